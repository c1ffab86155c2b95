"""The whole system as real processes for tests that look at it from the outside.

The local exchange (`simulate_exchange`), the market-data worker (`runstream`) pointed at it, and
daphne, joined by Redis: what an operator's CLI or a browser sees on a real deployment. Built on the
integration harness, on a Redis database of its own so it never disturbs the integration tests'.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import websockets

from tests.integration import harness
from tests.integration.harness import claim_redis_db

DEMO_USER = ("demo", "demo-pass-123")  # created by `manage.py seed_demo`
READY_TIMEOUT = 60.0  # seconds for the exchange, the worker and the first ticker


@dataclass
class LiveSystem:
    stack: harness.Stack
    gateway: harness.Gateway
    exchange: harness.Service
    worker: harness.Service
    exchange_port: int
    lock: IO  # held while the system runs: its Redis database is this run's alone

    @property
    def http(self) -> str:
        return self.gateway.http

    def token(self, username: str = DEMO_USER[0], password: str = DEMO_USER[1]) -> str:
        credentials = {"username": username, "password": password}
        status, body = harness.http_json("POST", f"{self.http}/api/token/", credentials)
        assert status == 200, f"POST /api/token/ as {username}: {status} {body}"
        return body["access"]

    def restart_gateway(self) -> harness.Gateway:
        """Stop daphne and start a new one on the same port, as a deployment restart would."""
        self.gateway.service.stop()
        self.gateway = self.stack.daphne(self.gateway.port)
        return self.gateway

    def stop(self) -> None:
        self.stack.stop_all()
        self.lock.close()


def start(workdir: Path, redis_dbs: tuple[int, ...], **env: str) -> LiveSystem:
    """Migrate, seed the demo user, start exchange + worker + daphne, and wait for market data."""
    if not harness.redis_answers():
        raise RuntimeError("Redis is not answering on 127.0.0.1:6379: start it (.ci/run does)")
    redis_db, lock = claim_redis_db(redis_dbs)
    try:
        return _start(workdir, redis_db, lock, env)
    except BaseException:
        lock.close()
        raise


def _start(workdir: Path, redis_db: int, lock: IO, env: dict[str, str]) -> LiveSystem:
    subprocess.run(["redis-cli", "-n", str(redis_db), "FLUSHDB"], check=True, capture_output=True)
    exchange_port = harness.free_port()
    exchange_url = f"127.0.0.1:{exchange_port}"
    stack = harness.Stack(
        workdir=workdir,
        redis_url=f"redis://127.0.0.1:6379/{redis_db}",
        database_path=workdir / "db.sqlite3",
        extra_env={
            "MARKET_SOURCE": "simulator",
            "BINANCE_WS_URL": f"ws://{exchange_url}",
            "BINANCE_REST_URL": f"http://{exchange_url}",
            **env,
        },
    )
    stack.manage("migrate", "--no-input")
    stack.manage("seed_demo", DJANGO_DEBUG="1")  # it refuses to run without debug
    manage = [harness.PYTHON, "manage.py"]
    exchange_args = ["simulate_exchange", "--port", str(exchange_port), "--interval", "0.2"]
    exchange = stack.spawn("exchange", [*manage, *exchange_args])
    try:
        _wait_for_port(exchange, exchange_port)
        worker = stack.spawn("worker", [*manage, "runstream"])
        gateway = stack.daphne()
        system = LiveSystem(stack, gateway, exchange, worker, exchange_port, lock)
        wait_for_ticker(system, "BTCUSDT")
    except BaseException:
        print(stack.logs())
        stack.stop_all()
        raise
    return system


def _wait_for_port(service: harness.Service, port: int, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.log()[-4000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"{service.name} is not listening on {port}:\n{service.log()[-4000:]}")


def wait_for_ticker(system: LiveSystem, symbol: str, timeout: float = READY_TIMEOUT) -> dict:
    """The first ticker the gateway delivers for `symbol`: the worker is connected and publishing."""

    async def first_ticker() -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not system.worker.alive():
                raise RuntimeError(f"the worker exited:\n{system.worker.log()[-4000:]}")
            try:
                async with websockets.connect(f"{system.gateway.ws}/ws/market", open_timeout=5) as ws:
                    await ws.send(json.dumps({"type": "subscribe_ticker", "symbols": [symbol]}))
                    while True:
                        message = json.loads(await asyncio.wait_for(ws.recv(), max(0.1, deadline - time.monotonic())))
                        if message.get("type") == "ticker" and message.get("symbol") == symbol:
                            return message
            except (OSError, TimeoutError, websockets.ConnectionClosed):
                await asyncio.sleep(0.5)
        raise TimeoutError(f"no {symbol} ticker within {timeout:g} s")

    try:
        return asyncio.run(first_ticker())
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}\n{system.stack.logs()}") from None
