"""A production-shaped system of one test's own: private Redis (plain or Sentinel), its own database,
the local exchange, daphne instances, several workers, nginx in front.

Its own Redis and database keep it apart from the session's shared system: its workers fill only
its own orders and publish only to its own clients, and it can be killed piece by piece.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import time
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import redis

from tests.deploy.files import nginx_binary, nginx_main_conf, render_nginx_site
from tests.integration import harness
from tests.integration.conftest import Exchange, start_exchange, start_worker
from tests.integration.harness import Client, Gateway, Service, ahttp_json
from tests.support import TIMEOUT, access_token

SLOW = TIMEOUT * 3


def redis_server(stack, name: str, *args: str) -> tuple[Service, int]:
    """A redis-server of this test's own on a free port, in a folder of its own."""
    port = harness.free_port()
    folder = stack.workdir / f"{name}-{port}"
    folder.mkdir()
    argv = ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)]
    service = stack.spawn(name, [*argv, "--save", "", "--appendonly", "no", *args])
    harness.wait_until(lambda: harness.redis_answers(port=port), service, f"{name} did not start")
    return service, port


def sentinel_binary() -> list[str]:
    """`redis-sentinel` (Debian's package) or, the same program, `redis-server --sentinel`."""
    import shutil

    return ["redis-sentinel"] if shutil.which("redis-sentinel") else ["redis-server"]


def redis_sentinel(stack, name: str, master_port: int, *, quorum: int = 2) -> tuple[Service, int]:
    """A Sentinel watching 127.0.0.1:master_port as `mymaster`, with its config file in its own folder."""
    port = harness.free_port()
    folder = stack.workdir / f"{name}-{port}"
    folder.mkdir()
    conf = folder / "sentinel.conf"  # Sentinel rewrites it: one per process
    conf.write_text(
        f"port {port}\nbind 127.0.0.1\ndir {folder}\n"
        f"sentinel monitor mymaster 127.0.0.1 {master_port} {quorum}\n"
        "sentinel down-after-milliseconds mymaster 2000\n"
        "sentinel failover-timeout mymaster 10000\n"
        "sentinel parallel-syncs mymaster 1\n"
    )
    argv = [*sentinel_binary(), str(conf)]
    if argv[0] == "redis-server":
        argv.append("--sentinel")
    service = stack.spawn(name, argv)
    harness.wait_until(lambda: harness.redis_answers(port=port), service, f"{name} did not start")
    return service, port


@dataclass
class System:
    """One test's deployment. `stop()` ends every process it started."""

    stack: object
    name: str
    redis_url: str
    database: str = ""
    services: list[Service] = field(default_factory=list)
    users: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.database = f"sqlite:///{self.stack.workdir / f'{self.name}.sqlite3'}"
        self.stack.manage("migrate", "--no-input", DATABASE_URL=self.database)

    @property
    def env(self) -> dict[str, str]:
        return {"REDIS_URL": self.redis_url, "DATABASE_URL": self.database}

    def own(self, service: Service) -> Service:
        self.services.append(service)
        return service

    def exchange(self, *args: str) -> Exchange:
        exchange = start_exchange(self.stack, *args)
        self.own(exchange.service)
        return exchange

    def daphne(self, *extra: str, **env: str) -> Gateway:
        gateway = self.stack.daphne(None, *extra, **self.env, **env)
        self.own(gateway.service)
        return gateway

    def worker(self, exchange: Exchange, **env: str) -> Service:
        return self.own(start_worker(self.stack, exchange, **self.env, **env))

    def user(self, name: str) -> int:
        script = harness.make_user_script(name, f"{name}-password-1")
        done = self.stack.manage("shell", "-c", script, DATABASE_URL=self.database)
        self.users[name] = int(done.stdout.strip().splitlines()[-1])
        return self.users[name]

    def fills_of(self, order_id: int) -> int:
        script = f"from accounts.models import Fill; print(Fill.objects.filter(order_id={order_id}).count())"
        done = self.stack.manage("shell", "-c", script, DATABASE_URL=self.database)
        return int(done.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        for service in reversed(self.services):
            service.stop()


def leader(gateway: Gateway) -> dict | None:
    return gateway.status()["market_data"].get("leader")


def service_of(record: dict | None, services: list[Service]) -> Service | None:
    """The worker process a leader record names (its name is host:pid)."""
    if not record:
        return None
    pid = int(record["worker"].rsplit(":", 1)[1])
    return next((s for s in services if s.process is not None and s.process.pid == pid), None)


async def wait_for(predicate, what: str, timeout: float = SLOW, every: float = 0.2):
    """Poll something outside this process (HTTP status, Redis) until it holds; its value is returned."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = await asyncio.to_thread(predicate)
            if value:
                return value
        except (OSError, KeyError, ValueError, redis.RedisError) as error:
            last_error = error
        await asyncio.sleep(every)
    raise TimeoutError(f"{what} (last error: {last_error!r})")


async def ticker_after(client: Client, since: str, symbol: str = "BTCUSDT", timeout: float = SLOW) -> dict:
    """The first ticker stamped (exchange event time) after `since`."""
    return await client.recv_until(
        lambda m: m["type"] == "ticker" and m["symbol"] == symbol and m["timestamp"] > since, timeout=timeout
    )


@dataclass
class Trader:
    """One user's REST calls and /ws/trading connection, keeping every message read in `seen`."""

    http: str
    ws: str
    user_id: int
    client: Client | None = None
    seen: list[dict] = field(default_factory=list)

    @property
    def token(self) -> str:
        return access_token(self.user_id)

    async def connect(self, **kwargs) -> Trader:
        self.client = await Client.connect(f"{self.ws}/ws/trading?token={self.token}", **kwargs)
        await self.client.subscribe({"type": "subscribe", "channels": ["orders"]})
        return self

    async def place(self, **order: str) -> dict:
        status, body = await ahttp_json("POST", f"{self.http}/api/orders/", order, self.token)
        assert status == 201, body
        return body

    async def order(self, order_id: int) -> dict:
        status, body = await ahttp_json("GET", f"{self.http}/api/orders/{order_id}/", None, self.token)
        assert status == 200, body
        return body

    async def next(self, predicate, timeout: float = SLOW) -> dict:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching message within {timeout} s; the last ones: {self.seen[-6:]}")
            message = await self.client.recv(left)
            self.seen.append(message)
            if predicate(message):
                return message

    async def order_reaches(self, order_id: int, status: str, timeout: float = SLOW) -> dict:
        return await self.next(
            lambda m: m["type"] == "order_update" and m["order_id"] == str(order_id) and m["status"] == status,
            timeout,
        )

    def statuses_of(self, order_id: int) -> list[str]:
        return [m["status"] for m in self.seen if m["type"] == "order_update" and m["order_id"] == str(order_id)]

    async def close(self) -> None:
        if self.client is not None:
            await self.client.close()


async def print_trade(exchange: Exchange, market: Client, price: str, symbol: str = "BTCUSDT") -> dict:
    """Print a trade at the exchange and return once it came back through the gateway (the worker has it)."""
    printed = (await exchange.control("trade", symbol=symbol, price=price, quantity="1"))["trade"]
    return await market.recv_until(
        lambda m: m["type"] == "trade" and m["symbol"] == symbol and m.get("trade_id") == printed["t"], timeout=SLOW
    )


def below(price: str, fraction: str = "0.9") -> str:
    return str((Decimal(price) * Decimal(fraction)).quantize(Decimal("0.01")))


@dataclass
class Nginx:
    service: Service
    port: int
    workdir: Path

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def start_nginx(stack, daphne_ports: list[int], static_root: Path) -> Nginx:
    """nginx with deploy/'s site rendered for these ports, in the foreground, files in its own folder."""
    binary = nginx_binary()
    if binary is None:
        raise RuntimeError("nginx is not installed: Debian's `nginx` package (.ci/run installs it)")
    port = harness.free_port()
    workdir = stack.workdir / f"nginx-{port}"
    workdir.mkdir()
    site = workdir / "trading.conf"
    site.write_text(render_nginx_site(listen=f"127.0.0.1:{port}", daphne_ports=daphne_ports, static_root=static_root))
    conf = workdir / "nginx.conf"
    conf.write_text(nginx_main_conf(workdir, site))
    checked = subprocess.run([binary, "-t", "-c", str(conf), "-p", str(workdir)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stderr
    service = stack.spawn("nginx", [binary, "-c", str(conf), "-p", str(workdir)])
    nginx = Nginx(service, port, workdir)
    harness.wait_until(lambda: harness.http_json("GET", f"{nginx.http}/ws/status")[0] == 200, service, "nginx")
    return nginx


def kill(service: Service) -> None:
    """SIGKILL: no clean-up, no lease released, as when a machine dies."""
    with contextlib.suppress(ProcessLookupError):
        service.process.send_signal(signal.SIGKILL)
    service.process.wait(TIMEOUT)
