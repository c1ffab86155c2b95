"""Graceful drain (realtime/drain.py) with real processes: a SIGTERMed daphne tells its clients to
reconnect elsewhere (an error frame with 1012, then close 1012), refuses new connections and exits
within its bound; and a rolling restart of two instances behind nginx loses no trading event.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import re
import signal
import time
from dataclasses import dataclass, field

import orjson
import websockets

from tests import messages
from tests.integration.harness import Client, Gateway
from tests.integration.topology import SLOW, System, redis_server, start_nginx
from tests.schema import check_frame
from tests.support import TIMEOUT, access_token

DRAIN_SECONDS = 10  # the product's default bound (DRAIN_SECONDS)
SHUTDOWN_SLACK = 5  # after the drain: Twisted stops, daphne cancels what is left, Python exits
SERVICE_RESTART = 1012
TEXT, CLOSE = 0x1, 0x8


def sigterm(gateway: Gateway) -> float:
    gateway.service.process.send_signal(signal.SIGTERM)
    return time.monotonic()


async def exit_of(gateway: Gateway, bound: float) -> tuple[int, float]:
    """The exit status of a SIGTERMed instance, and when it exited (it must within `bound` seconds)."""
    returncode = await asyncio.to_thread(gateway.service.process.wait, bound)
    return returncode, time.monotonic()


# --- one instance -------------------------------------------------------------------------------


async def test_the_clients_of_a_sigtermed_instance_get_an_error_frame_and_1012_and_it_exits(stack):
    gateway = stack.daphne()
    trading = await Client.connect(f"{gateway.ws}/ws/trading?token={access_token(stack.users['dave'])}")
    await trading.subscribe({"type": "subscribe", "channels": ["orders"]})
    market = await Client.connect(f"{gateway.ws}/ws/market")
    await market.subscribe({"type": "subscribe_trades", "symbols": ["BTCUSDT"]})

    signalled = sigterm(gateway)

    for client in (trading, market):
        error = await client.recv_until(lambda m: m["type"] == "error")
        assert error["code"] == SERVICE_RESTART
        assert "reconnect" in error["message"]
        assert (await client.closed())[0] == SERVICE_RESTART
    returncode, exited = await exit_of(gateway, DRAIN_SECONDS + SHUTDOWN_SLACK)
    assert returncode == 0
    assert exited - signalled < DRAIN_SECONDS + SHUTDOWN_SLACK
    assert re.search(r"drained in [\d.]+ s, 0 connections left", gateway.service.log())


@dataclass
class RawSocket:
    """A WebSocket spoken by hand: it can leave a close unanswered, as a frozen browser tab does."""

    port: int
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    @classmethod
    async def open(cls, port: int) -> RawSocket:
        reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), TIMEOUT)
        return cls(port, reader, writer)

    async def head(self) -> bytes:
        return await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), TIMEOUT)

    async def status(self) -> None:
        """One keep-alive HTTP request: afterwards daphne has surely accepted this connection."""
        self.writer.write(f"GET /ws/status HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\n\r\n".encode())
        head = await self.head()
        assert head.startswith(b"HTTP/1.1 200"), head
        length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))
        await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)

    async def upgrade(self, path: str = "/ws/market") -> None:
        self.writer.write(
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{self.port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        head = await self.head()
        assert head.startswith(b"HTTP/1.1 101"), head

    async def frame(self) -> tuple[int, bytes]:
        first, second = await asyncio.wait_for(self.reader.readexactly(2), TIMEOUT)
        length = second & 0x7F
        if length in (126, 127):
            length = int.from_bytes(await self.reader.readexactly(2 if length == 126 else 8), "big")
        return first & 0x0F, await asyncio.wait_for(self.reader.readexactly(length), TIMEOUT)

    async def until_close(self) -> tuple[list[dict], int]:
        """The messages before the server's close frame, and its code; the close is not answered."""
        texts = []
        while (frame := await self.frame())[0] != CLOSE:
            if frame[0] == TEXT:
                texts.append(orjson.loads(frame[1]))
        return texts, int.from_bytes(frame[1][:2], "big")

    def close(self) -> None:
        self.writer.close()


async def test_a_draining_instance_refuses_new_connections(stack):
    """A client that never answers the close keeps the instance draining (about a second, until
    autobahn drops it): meanwhile a new connection is refused, and a request on a connection daphne
    had accepted before the signal is answered by the draining application with 1012."""
    gateway = stack.daphne(None, DRAIN_SECONDS="5")
    frozen = await RawSocket.open(gateway.port)
    await frozen.upgrade()
    accepted_before = await RawSocket.open(gateway.port)
    await accepted_before.status()

    signalled = sigterm(gateway)
    texts, code = await frozen.until_close()
    assert [(m["type"], m["code"]) for m in texts] == [("error", SERVICE_RESTART)]
    assert code == SERVICE_RESTART

    refused = None
    try:
        await Client.connect(f"{gateway.ws}/ws/market")
    except OSError as error:
        refused = error
    await accepted_before.upgrade()
    texts, code = await accepted_before.until_close()

    assert isinstance(refused, ConnectionRefusedError), refused
    assert [(m["type"], m["code"]) for m in texts] == [("error", SERVICE_RESTART)]  # still running: draining
    assert code == SERVICE_RESTART
    returncode, exited = await exit_of(gateway, 5 + SHUTDOWN_SLACK)
    assert returncode == 0
    assert exited - signalled < 5 + SHUTDOWN_SLACK
    frozen.close()
    accepted_before.close()


# --- a rolling restart behind nginx -------------------------------------------------------------

USERS = 3
CLIENTS_PER_USER = 2
EVENTS_PER_SECOND = 10  # per user
RESTART_SPREAD = 1.0  # s over which a client spreads its reconnect after 1012 (the JS client: 5 s)
STEADY = 3  # events every client receives before and after each restart, to prove the flow is live


@dataclass
class Follower:
    """A trading client that behaves as static/js/trading-ws.js: after 1012 it reconnects (through
    nginx) after a random delay and resumes with `since`. It keeps every order_update seq it was
    sent, duplicates included, so the server's exactly-once is what is checked."""

    url: str
    user_id: int
    changed: asyncio.Event
    seqs: list[int] = field(default_factory=list)
    epoch: str | None = None
    live: bool = False  # subscribed on the current connection
    restarts: int = 0  # error frames with 1012
    closes: list[int | None] = field(default_factory=list)  # every close code received
    resumed: list[bool] = field(default_factory=list)  # `recovered` of every ack to a `since`
    refused_attempts: int = 0  # handshakes that failed (nginx had no instance for a moment)
    last_refusal: str = ""

    async def run(self) -> None:
        while True:
            try:
                ws = await websockets.connect(self.url, open_timeout=TIMEOUT, max_size=2**22)
            except (OSError, TimeoutError, websockets.InvalidHandshake) as error:
                self.refused_attempts += 1
                self.last_refusal = repr(error)
                await asyncio.sleep(random.uniform(0.1, 0.5))  # the retry's pace, as the client's backoff
                continue
            code = await self._follow(ws)
            self.closes.append(code)
            await asyncio.sleep(random.uniform(0, RESTART_SPREAD if code == SERVICE_RESTART else 0.5))

    async def _follow(self, ws) -> int | None:
        request: dict = {"type": "subscribe", "channels": ["orders"]}
        if self.epoch is not None:
            request["since"] = {"orders": {"epoch": self.epoch, "seq": self.seqs[-1] if self.seqs else 0}}
        try:
            await ws.send(json.dumps(request))
            while True:
                data = orjson.loads(await ws.recv())
                check_frame(data)
                for message in data if isinstance(data, list) else [data]:
                    self._take(message, resuming="since" in request)
        except websockets.ConnectionClosed as closed:
            return closed.rcvd.code if closed.rcvd else None
        finally:
            self.live = False
            self.changed.set()

    def summary(self) -> dict:
        return {
            "user": self.user_id,
            "live": self.live,
            "seqs": f"{len(self.seqs)} up to {self.seqs[-1] if self.seqs else None}",
            "restarts": self.restarts,
            "closes": self.closes,
            "resumed": self.resumed,
            "failed handshakes": self.refused_attempts,
            "last": self.last_refusal,
        }

    def _take(self, message: dict, *, resuming: bool) -> None:
        if message["type"] == "subscribed":
            position = message["positions"]["orders"]
            self.epoch = self.epoch or position["epoch"]
            if resuming:
                self.resumed.append(message["recovered"]["orders"])
            self.live = True
        elif message["type"] == "order_update" and message.get("seq") is not None:
            self.seqs.append(message["seq"])
        elif message["type"] == "error" and message["code"] == SERVICE_RESTART:
            self.restarts += 1
        self.changed.set()


async def eventually(changed: asyncio.Event, predicate, what: str, timeout: float = SLOW, followers=()) -> None:
    """Wait until `predicate()` holds, looking again whenever a follower's state changed."""
    deadline = time.monotonic() + timeout
    while not predicate():
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"{what}: {[f.summary() for f in followers]}")
        changed.clear()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(changed.wait(), min(left, 0.5))


async def publish_steadily(users: list[int], stop: asyncio.Event, published: dict[int, int]) -> None:
    """Order updates for every user at a steady pace, through realtime.publish (history, then layer)."""
    from realtime import publish

    order_ids = itertools.count(1)
    while not stop.is_set():
        for user_id in users:
            appended = await publish.apublish_user(user_id, "orders", messages.order_update(order_id=next(order_ids)))
            published[user_id] = appended.seq
        await asyncio.sleep(1 / EVENTS_PER_SECOND)  # the flow's pace, not a synchronisation


@contextlib.contextmanager
def publishing_into(settings, redis_url: str):
    """realtime.publish from this process onto another system's Redis (layers, cache and history)."""
    from channels.layers import channel_layers

    from realtime import history
    from tradingsite.settings import caches
    from tradingsite.settings import channel_layers as layers_for

    settings.CHANNEL_LAYERS = layers_for(redis_url)
    settings.CACHES = caches(redis_url)
    channel_layers.backends.clear()
    app = settings.APP
    history.set_history(history.RedisHistory(redis_url, app.ws_history_size, app.ws_history_ttl))
    try:
        yield
    finally:
        history.set_history(None)
        channel_layers.backends.clear()


def trading_connections(gateway: Gateway) -> float:
    found = re.search(r'^ws_active_connections\{endpoint="trading"\} (\S+)$', gateway.metrics(), re.MULTILINE)
    return float(found.group(1)) if found else 0.0


async def test_a_rolling_restart_behind_nginx_loses_no_trading_event(stack, settings, tmp_path):
    _, redis_port = redis_server(stack, "rolling-redis")
    system = System(stack, "rolling", f"redis://127.0.0.1:{redis_port}/0")
    changed = asyncio.Event()
    tasks: list[asyncio.Task] = []
    try:
        gateways = [system.daphne(), system.daphne()]
        nginx = start_nginx(stack, [g.port for g in gateways], tmp_path)
        system.own(nginx.service)
        users = [system.user(f"roller-{n}") for n in range(USERS)]
        with publishing_into(settings, system.redis_url):
            urls = [(f"{nginx.ws}/ws/trading?token={access_token(user)}", user) for user in users]
            # Half of them batched, as the JS client asks (frames may hold arrays).
            followers = [
                Follower(url + ("&batch=1" if n % 2 else ""), user, changed)
                for url, user in urls
                for n in range(CLIENTS_PER_USER)
            ]
            tasks = [asyncio.create_task(follower.run()) for follower in followers]
            await eventually(changed, lambda: all(f.live for f in followers), "not every client subscribed")
            held = [await asyncio.to_thread(trading_connections, g) for g in gateways]
            assert all(count >= 1 for count in held), f"nginx should spread the clients: {held}"

            stop, published = asyncio.Event(), {}
            tasks.append(asyncio.create_task(publish_steadily(users, stop, published)))
            exits = []
            for index, gateway in enumerate(gateways):
                await steady(changed, followers)
                gateways[index], took = await restart(stack, system, gateway, followers, changed)
                exits.append(took)
            await steady(changed, followers)
            stop.set()
            await tasks.pop()
            await eventually(
                changed,
                lambda: all(f.seqs and f.seqs[-1] >= published[f.user_id] for f in followers),
                "not every client received the last event",
            )

        for follower in followers:
            assert follower.seqs == list(range(1, published[follower.user_id] + 1)), follower.seqs
            assert follower.restarts >= 1
            assert follower.resumed and all(follower.resumed), follower.resumed
            assert set(follower.closes) == {SERVICE_RESTART}, follower.closes
        print_counts(followers, published, exits)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        system.stop()


async def restart(stack, system: System, gateway: Gateway, followers: list[Follower], changed) -> tuple[Gateway, float]:
    """SIGTERM one instance while it serves some of the clients; they all come back through nginx
    (to the other instance); then the instance starts again on its port (nginx's list stays)."""
    on_it = await asyncio.to_thread(trading_connections, gateway)
    assert on_it >= 1, "the instance to restart serves nobody: the test would prove nothing"
    restarts_before = sum(f.restarts for f in followers)

    signalled = sigterm(gateway)
    returncode, exited = await exit_of(gateway, DRAIN_SECONDS + SHUTDOWN_SLACK)
    assert returncode == 0
    assert exited - signalled < DRAIN_SECONDS + SHUTDOWN_SLACK
    await eventually(
        changed,
        lambda: sum(f.restarts for f in followers) >= restarts_before + on_it and all(f.live for f in followers),
        f"the {on_it:g} clients of the stopped instance did not all come back",
        followers=followers,
    )
    # The same port (nginx's list stays); in a thread, so the flow and the clients go on meanwhile.
    restarted = await asyncio.to_thread(stack.daphne, gateway.port, **system.env)
    system.own(restarted.service)
    return restarted, exited - signalled


async def steady(changed: asyncio.Event, followers: list[Follower]) -> None:
    marks = [len(f.seqs) for f in followers]
    await eventually(
        changed,
        lambda: all(len(f.seqs) >= mark + STEADY for f, mark in zip(followers, marks, strict=True)),
        "the flow of order updates did not reach every client",
        followers=followers,
    )


def print_counts(followers: list[Follower], published: dict[int, int], exits: list[float]) -> None:
    """The figures the report quotes (pytest -s shows them)."""
    print(
        f"rolling restart: {len(followers)} clients, events per user {sorted(published.values())}, "
        f"1012 closes {sum(f.restarts for f in followers)}, resumes {sum(len(f.resumed) for f in followers)} "
        f"(all recovered), failed handshakes {sum(f.refused_attempts for f in followers)}, "
        f"SIGTERM to exit {', '.join(f'{took:.2f} s' for took in exits)}"
    )
