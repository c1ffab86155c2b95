"""Real processes for integration tests: daphne, the stream worker and the local exchange.

Each is a subprocess of `python manage.py ...` or `daphne`, with its output kept in a log file that
is printed when a test fails. Everything listens on 127.0.0.1 on free ports.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import orjson
import websockets

from tests.schema import check_frame
from tests.support import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
DAPHNE = str(Path(sys.executable).with_name("daphne"))
SECRET_KEY = "integration-tests-secret-key-0123456789-abcdefghijklmnop"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_answers(host: str = "127.0.0.1", port: int = 6379) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass
class Service:
    """One subprocess with its log, stopped with SIGTERM (then SIGKILL) at the end."""

    name: str
    args: list[str]
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen | None = None

    def start(self) -> Service:
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            self.args, cwd=ROOT, env=self.env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, sig: int = signal.SIGTERM, timeout: float = TIMEOUT) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._log.close()
        return self.process.returncode

    def kill(self) -> None:
        self.stop(signal.SIGKILL)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


@dataclass
class Stack:
    """The environment shared by every process of one test session."""

    workdir: Path
    redis_url: str
    database_path: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    services: list[Service] = field(default_factory=list)

    def env(self, **overrides: str) -> dict[str, str]:
        env = {
            k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WS_", "BINANCE_", "MARKET_", "REDIS"))
        }
        env.update(
            DJANGO_SETTINGS_MODULE="tradingsite.settings",
            DJANGO_SECRET_KEY=SECRET_KEY,
            DJANGO_DEBUG="0",
            DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
            DATABASE_URL=f"sqlite:///{self.database_path}",
            REDIS_URL=self.redis_url,
            PYTHONUNBUFFERED="1",
        )
        env.update(self.extra_env)
        env.update({k: str(v) for k, v in overrides.items()})
        return env

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [PYTHON, "manage.py", *args], cwd=ROOT, env=self.env(**env), capture_output=True, text=True, check=True
        )

    def spawn(self, name: str, args: list[str], **env: str) -> Service:
        service = Service(name, args, self.env(**env), self.workdir / f"{name}-{len(self.services)}.log").start()
        self.services.append(service)
        return service

    def daphne(self, port: int | None = None, *extra: str, **env: str) -> Gateway:
        port = port or free_port()
        args = [DAPHNE, "-b", "127.0.0.1", "-p", str(port), *extra, "tradingsite.asgi:application"]
        gateway = Gateway(self.spawn(f"daphne-{port}", args, **env), port)
        gateway.wait_ready()
        return gateway

    def stop_all(self) -> None:
        for service in reversed(self.services):
            service.stop()

    def logs(self) -> str:
        return "\n".join(f"--- {s.name} ---\n{s.log()[-6000:]}" for s in self.services)


@dataclass
class Gateway:
    service: Service
    port: int

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.service.alive():
                raise RuntimeError(f"{self.service.name} exited:\n{self.service.log()[-4000:]}")
            try:
                http_json("GET", f"{self.http}/ws/status")
                return
            except (OSError, urllib.error.URLError):
                time.sleep(0.1)
        raise TimeoutError(f"{self.service.name} not ready:\n{self.service.log()[-4000:]}")

    def status(self, token: str | None = None) -> dict:
        return http_json("GET", f"{self.http}/ws/status", token=token)[1]

    def metrics(self) -> str:
        with urllib.request.urlopen(f"{self.http}/metrics", timeout=TIMEOUT) as response:
            return response.read().decode()


def http_json(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    """A JSON request with the standard library; returns (status, body) for 2xx and 4xx alike."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


async def ahttp_json(method: str, url: str, body: dict | None = None, token: str | None = None) -> tuple[int, dict]:
    return await asyncio.to_thread(http_json, method, url, body, token)


class Client:
    """A real `websockets` client with helpers that always wait with a timeout."""

    def __init__(self, ws):
        self.ws = ws

    @classmethod
    async def connect(cls, url: str, **kwargs) -> Client:
        ws = await websockets.connect(url, open_timeout=TIMEOUT, max_size=2**22, **kwargs)
        return cls(ws)

    async def send(self, message: dict | str) -> None:
        await self.ws.send(message if isinstance(message, str) else json.dumps(message))

    async def recv(self, timeout: float = TIMEOUT) -> dict:
        """The next message, checked against the wire contract (tests/schema.py)."""
        message = orjson.loads(await asyncio.wait_for(self.ws.recv(), timeout))
        check_frame(message)
        return message

    async def recv_until(self, predicate, timeout: float = TIMEOUT, skip_heartbeats: bool = True) -> dict:
        """The first message matching `predicate`; others (and heartbeats) are passed over."""
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError("no matching message arrived in time")
            message = await self.recv(left)
            if predicate(message):
                return message

    async def subscribe(self, message: dict) -> dict:
        """Send a subscribe request and insist on its acknowledgement."""
        reply = await self.request(message, "subscribed")
        assert reply["type"] == "subscribed", reply
        return reply

    async def request(self, message: dict, reply_type: str | tuple[str, ...] = ("subscribed", "unsubscribed")) -> dict:
        kinds = (reply_type,) if isinstance(reply_type, str) else reply_type
        await self.send(message)
        return await self.recv_until(lambda m: m["type"] in kinds or m["type"] == "error")

    async def closed(self, timeout: float = TIMEOUT) -> tuple[int | None, str]:
        """Read until the server closes; returns (close code, reason)."""
        try:
            while True:
                await asyncio.wait_for(self.ws.recv(), timeout)
        except websockets.ConnectionClosed as closed:
            return (closed.rcvd.code if closed.rcvd else None), (closed.rcvd.reason if closed.rcvd else "")

    async def close(self) -> None:
        await self.ws.close()

    async def __aenter__(self) -> Client:
        return self

    async def __aexit__(self, *exc) -> None:
        await self.ws.close()


def make_user_script(username: str, password: str, **fields: object) -> str:
    """Python for `manage.py shell -c` that creates or updates one user."""
    return (
        "from django.contrib.auth import get_user_model\n"
        f"user, _ = get_user_model().objects.update_or_create(username={username!r}, defaults={fields!r})\n"
        f"user.set_password({password!r})\n"
        "user.save()\n"
        "print(user.pk)\n"
    )


def wait_until(predicate, service: Service, what: str, timeout: float = 30) -> None:
    """Poll a condition about the outside world (HTTP status, a file) until it holds or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.log()[-4000:]}")
        try:
            if predicate():
                return
        except (OSError, urllib.error.URLError, KeyError):
            pass
        time.sleep(0.1)
    raise TimeoutError(f"{what}:\n{service.log()[-4000:]}")


def wait_until_http(url: str, service: Service, timeout: float = 30) -> None:
    wait_until(lambda: http_json("GET", url)[0] == 200, service, f"{url} never answered", timeout)


def claim_redis_db(candidates: tuple[int, ...], timeout: float = 600) -> tuple[int, IO]:
    """The first of `candidates` no other test run on this machine is using, with its lock held.

    Two runs of the suite at once (two checkouts, CI beside a developer) would otherwise flush and
    feed each other's database: the demo user's trading events and the market data would mix.
    """
    deadline = time.monotonic() + timeout
    while True:
        for db in candidates:
            handle = (Path(tempfile.gettempdir()) / f"trading-gateway-tests-redis-{db}.lock").open("w")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.close()
                continue
            return db, handle
        if time.monotonic() > deadline:
            raise TimeoutError(f"Redis databases {candidates} stayed in use by other test runs")
        time.sleep(0.5)


# The databases unit tests claim (the integration stacks take the lower ones).
UNIT_REDIS_DBS = (10, 15, 13, 14, 12)


@contextlib.contextmanager
def claimed_redis_url(tests: str, candidates: tuple[int, ...] = UNIT_REDIS_DBS) -> Iterator[str]:
    """The URL of a Redis database this run alone uses while the block runs; `tests` says who needs it."""
    import pytest

    if not redis_answers():
        pytest.fail(f"Redis is not answering on 127.0.0.1:6379: start it (.ci/run does) to run {tests}")
    db, lock = claim_redis_db(candidates)
    try:
        yield f"redis://127.0.0.1:6379/{db}"
    finally:
        lock.close()


async def status_when(gateway, token: str, ready) -> dict:
    """The first /ws/status answer that satisfies `ready`, asked again while it is cached."""
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while not ready(figures := await asyncio.to_thread(gateway.status, token)):
        assert asyncio.get_running_loop().time() < deadline, f"status never got there: {figures}"
        await asyncio.sleep(0.25)  # the cache's own period is 2 s; nothing to await but the next answer
    return figures
