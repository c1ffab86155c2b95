"""DATABASE_URL pointing at PostgreSQL works: migrations, tokens over HTTP, the trading socket."""

from __future__ import annotations

import socket
import subprocess
import uuid

import pytest

from tests.integration import harness
from tests.integration.harness import Client, ahttp_json


def postgres_answers() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return True
    except OSError:
        return False


@pytest.fixture(scope="module")
def postgres_gateway(stack):
    if not postgres_answers():
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432 on this machine")
    name = f"gateway_test_{uuid.uuid4().hex[:8]}"
    psql = ["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-c"]
    subprocess.run([*psql, f"CREATE DATABASE {name}"], check=True, capture_output=True)
    url = f"postgres://postgres@127.0.0.1:5432/{name}"
    try:
        stack.manage("migrate", "--no-input", DATABASE_URL=url)
        stack.manage("shell", "-c", harness.make_user_script("pat", "pat-password-1"), DATABASE_URL=url)
        yield stack.daphne(None, DATABASE_URL=url)
    finally:
        for service in stack.services:
            if service.env.get("DATABASE_URL") == url:
                service.stop()
        subprocess.run([*psql, f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"], capture_output=True)


async def test_the_gateway_runs_on_postgresql(postgres_gateway):
    status, tokens = await ahttp_json(
        "POST", f"{postgres_gateway.http}/api/token/", {"username": "pat", "password": "pat-password-1"}
    )
    assert status == 200
    async with await Client.connect(f"{postgres_gateway.ws}/ws/trading?token={tokens['access']}") as client:
        ack = await client.request({"type": "subscribe", "channels": ["risk_alerts"]})
    assert ack["type"] == "subscribed"
