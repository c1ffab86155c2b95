"""No lost events, over real sockets: `seq`, the history, resuming with `since`, in-band token refresh.

A client subscribed to `orders` goes away while orders are placed (REST publishes `new`) and filled
(the runstream worker publishes `filled` on a trade the local exchange prints); it comes back with its
last position and must get exactly the updates it missed, in seq order, once, then live ones: on the
same daphne, on the other one, after its own daphne was SIGKILLed, and in the embedded one-process
mode. A watcher connection that stays subscribed the whole time says when every update was published,
and what the resumed client must see. Where the history cannot serve the position (Redis flushed, the
position older than the window) the ack says `recovered: false` and the orders snapshot follows.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
import redis
import websockets

from tests.integration import harness
from tests.integration.conftest import Exchange
from tests.integration.harness import Client, Gateway, ahttp_json
from tests.support import TIMEOUT, access_token, refresh_token

SLOW = TIMEOUT * 3  # a fill crosses the exchange, the worker, the database and Redis on a busy machine
ORDERS = 50  # placed and filled while the client is away: 100 order updates
BATCH = 10  # orders placed between two fills, so REST and the worker publish in turn
FINAL = {"filled", "canceled", "rejected"}

# The worker seeds the tradable symbols into the shared database, and is the only paper-trading engine.
pytestmark = pytest.mark.usefixtures("worker")


# --- builders ------------------------------------------------------------------------------------


def orders_url(gateway: Gateway, user_id: int, token: str | None = None) -> str:
    return f"{gateway.ws}/ws/trading?token={token or access_token(user_id)}"


async def new_user(stack, role: str, **env: str) -> int:
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    script = harness.make_user_script(name, f"{name}-password-1")
    done = await asyncio.to_thread(stack.manage, "shell", "-c", script, **env)
    return int(done.stdout.strip().splitlines()[-1])


@dataclass
class Follower:
    """One /ws/trading connection subscribed to `orders`: every order update it reads, and its position."""

    client: Client
    epoch: str
    seq: int
    ack: dict
    updates: list[dict] = field(default_factory=list)
    snapshot: list[dict] = field(default_factory=list)

    @classmethod
    async def open(cls, url: str, since: dict | None = None) -> Follower:
        """Subscribed; a fresh subscribe's snapshot is read too (a ping's pong follows it), so an order
        placed afterwards arrives as an event only, never also inside the snapshot."""
        client = await Client.connect(url)
        request = {"type": "subscribe", "channels": ["orders"]}
        if since is not None:
            request["since"] = {"orders": since}
        ack = await client.subscribe(request)
        position = ack["positions"]["orders"]
        follower = cls(client, position["epoch"], position["seq"], ack)
        if since is None:
            follower.snapshot = await follower.until_pong()
        return follower

    async def until_pong(self) -> list[dict]:
        """The order updates that arrive before the answer to a ping sent now."""
        await self.client.send({"type": "ping"})
        seen = []
        while (message := await self.client.recv_until(lambda m: m["type"] in {"order_update", "pong"}))[
            "type"
        ] != "pong":
            seen.append(message)
        return seen

    @property
    def position(self) -> dict:
        return {"epoch": self.epoch, "seq": self.seq}

    async def read_until(self, done, timeout: float = SLOW) -> list[dict]:
        """Read order updates (checking each one's seq is the next) until `done(updates)` holds."""
        deadline = asyncio.get_running_loop().time() + timeout
        while not done(self.updates):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"waited {timeout} s; the last updates: {self.updates[-4:]}")
            message = await self.client.recv_until(lambda m: m["type"] in {"order_update", "error"}, left)
            assert message["type"] == "order_update", message
            self.updates.append(message)
            if message.get("seq") is not None:
                assert message["seq"] == self.seq + 1, (self.seq, message)  # in order, no gap, no duplicate
                self.seq = message["seq"]
        return self.updates

    async def final(self, order_ids: list[str], timeout: float = SLOW) -> list[dict]:
        """Read until every one of these orders reached a final status."""
        return await self.read_until(lambda updates: all_final(updates, order_ids), timeout)


def all_final(updates: list[dict], order_ids: list[str]) -> bool:
    last = {m["order_id"]: m["status"] for m in updates}
    return all(last.get(i) in FINAL for i in order_ids)


@dataclass
class Desk:
    """REST on one daphne, trades printed at the local exchange and seen back on /ws/market."""

    gateway: Gateway
    exchange: Exchange | None
    market: Client | None
    user_id: int
    symbol: str

    async def call(self, method: str, path: str, body: dict | None = None):
        return await ahttp_json(method, f"{self.gateway.http}/api/{path}", body, access_token(self.user_id))

    async def place(self, **order: str) -> str:
        status, body = await self.call("POST", "orders/", {"symbol": self.symbol, **order})
        assert status == 201, body
        return str(body["id"])

    async def print(self, price: str) -> None:
        """Print a trade and return once the gateway published it (the worker has matched it)."""
        reply = await self.exchange.control("trade", symbol=self.symbol, price=price, quantity="1000")
        trade_id = reply["trade"]["t"]
        await self.market.recv_until(
            lambda m: m["type"] == "trade" and m["symbol"] == self.symbol and m.get("trade_id") == trade_id,
            timeout=SLOW,
        )

    async def trade_while_away(self, count: int = ORDERS) -> list[str]:
        """`count` limit buys placed over REST (`new`), filled by the worker in batches (`filled`)."""
        ids: list[str] = []
        while len(ids) < count:
            await self.print("100.00")  # above the buys: they rest
            for _ in range(min(BATCH, count - len(ids))):
                ids.append(await self.place(side="buy", type="limit", quantity="0.1", price="99.00"))
            await self.print("98.00")  # crosses every resting buy: the worker fills them
        return ids

    async def orders(self) -> list[dict]:
        status, body = await self.call("GET", "orders/?limit=1000")
        assert status == 200, body
        return body.get("results", body) if isinstance(body, dict) else body


@contextlib.asynccontextmanager
async def desk(gateway: Gateway, exchange: Exchange | None, user_id: int, symbol: str) -> AsyncIterator[Desk]:
    market = None
    if exchange is not None:
        market = await Client.connect(f"{gateway.ws}/ws/market")
        await market.subscribe({"type": "subscribe_trades", "symbols": [symbol]})
    try:
        yield Desk(gateway, exchange, market, user_id, symbol)
    finally:
        if market is not None:
            await market.close()


async def away_then_back(
    *, stack, away_on: Gateway, back_on: Gateway, rest: Gateway, exchange: Exchange, symbol: str, before_away=None
) -> None:
    """The whole scenario: seen one update, away for 50 orders, back with `since`, then live again."""
    user = await new_user(stack, "resumer")
    async with desk(rest, exchange, user, symbol) as trader:
        watcher = await Follower.open(orders_url(rest, user))
        client = await Follower.open(orders_url(away_on, user))
        assert (client.epoch, client.seq) == (watcher.epoch, watcher.seq) == (watcher.epoch, 0)
        first = await trader.place(side="buy", type="limit", quantity="10", price="1.00")
        await client.read_until(lambda updates: len(updates) == 1)
        await watcher.read_until(lambda updates: len(updates) == 1)
        position = client.position
        assert position["seq"] == 1 and client.updates[0]["order_id"] == first, (client.updates, watcher.updates)
        await client.client.close()
        if before_away is not None:
            await before_away()

        ids = await trader.trade_while_away()
        missed = await watcher.final(ids)
        missed = missed[1:]
        assert len(missed) == 2 * ORDERS
        assert [m["seq"] for m in missed] == list(range(2, 2 + 2 * ORDERS))

        back = await Follower.open(orders_url(back_on, user), since=position)
        back.seq = position["seq"]  # the events after the position follow the ack
        assert back.ack["recovered"] == {"orders": True}, back.ack
        assert back.ack["positions"]["orders"] == {"epoch": position["epoch"], "seq": 1 + 2 * ORDERS}
        recovered = await back.final(ids)
        assert recovered == missed  # the very frames, in seq order, once, and no snapshot among them
        for order_id in ids:
            assert [m["status"] for m in recovered if m["order_id"] == order_id] == ["new", "filled"]

        live = await trader.place(side="buy", type="limit", quantity="10", price="1.00")
        (update,) = (await back.read_until(lambda updates: len(updates) == len(missed) + 1))[len(missed) :]
        assert (update["order_id"], update["status"], update["seq"]) == (live, "new", 2 + 2 * ORDERS)
        await trader.call("POST", f"orders/{first}/cancel/")
        await trader.call("POST", f"orders/{live}/cancel/")
        await back.client.close()
        await watcher.client.close()


# --- the live stack: exchange -> worker -> Redis -> daphne ---------------------------------------


@pytest.fixture(scope="module")
def live_second(stack, live_redis_url, worker):
    """A second daphne on the worker's Redis: a client may come back on either instance."""
    return stack.daphne(None, REDIS_URL=live_redis_url)


async def test_a_client_back_on_the_same_daphne_gets_exactly_the_missed_order_updates(
    stack, worker, live_gateway, exchange
):
    await away_then_back(
        stack=stack, away_on=live_gateway, back_on=live_gateway, rest=live_gateway, exchange=exchange, symbol="SOLUSDT"
    )


async def test_a_client_back_on_the_other_daphne_gets_exactly_the_missed_order_updates(
    stack, worker, live_gateway, live_second, exchange
):
    await away_then_back(
        stack=stack, away_on=live_gateway, back_on=live_second, rest=live_gateway, exchange=exchange, symbol="SOLUSDT"
    )


async def test_a_client_whose_daphne_was_killed_gets_exactly_the_missed_order_updates(
    stack, worker, live_gateway, live_redis_url, exchange
):
    doomed = stack.daphne(None, REDIS_URL=live_redis_url)

    async def kill() -> None:
        await asyncio.to_thread(doomed.service.kill)
        assert doomed.service.process.returncode == -9

    await away_then_back(
        stack=stack,
        away_on=doomed,
        back_on=live_gateway,
        rest=live_gateway,
        exchange=exchange,
        symbol="SOLUSDT",
        before_away=kill,
    )


async def test_trades_missed_while_away_are_resumed_on_the_other_daphne(
    stack, worker, live_gateway, live_second, exchange
):
    symbol = "ADAUSDT"
    async with desk(live_gateway, exchange, 0, symbol) as tape:
        away = await Client.connect(f"{live_gateway.ws}/ws/market")
        ack = await away.subscribe({"type": "subscribe_trades", "symbols": [symbol]})
        position = ack["positions"][symbol]
        await away.close()
        printed = []
        for price in ("0.5001", "0.5002", "0.5003", "0.5004", "0.5005"):
            await tape.print(price)
            printed.append(price)

        async with await Client.connect(f"{live_second.ws}/ws/market") as back:
            since = {"type": "subscribe_trades", "symbols": [symbol], "since": {symbol: position}}
            ack = await back.subscribe(since)
            assert ack["recovered"] == {symbol: True}, ack
            assert ack["positions"][symbol] == {"epoch": position["epoch"], "seq": position["seq"] + 5}
            trades = [await back.recv_until(lambda m: m["type"] == "trade") for _ in printed]
            await back.send({"type": "ping"})
            assert (await back.recv_until(lambda m: m["type"] in {"trade", "pong"}))["type"] == "pong"
    assert [t["seq"] for t in trades] == list(range(position["seq"] + 1, position["seq"] + 6))
    assert [t["price"] for t in trades] == printed and {t["symbol"] for t in trades} == {symbol}


# --- embedded: one process, in-memory layer and history ------------------------------------------


@pytest.fixture(scope="module")
def embedded_live(stack, exchange):
    """`manage.py serve` without REDIS_URL, its worker on the local exchange, its own database."""
    port = harness.free_port()
    database = f"sqlite:///{stack.workdir / 'embedded-recovery.sqlite3'}"
    stack.manage("migrate", "--no-input", DATABASE_URL=database)
    env = stack.env(
        DATABASE_URL=database,
        BINANCE_REST_URL=exchange.rest_url,
        BINANCE_WS_URL=exchange.ws_url,
        MARKET_SOURCE="binance",
        MARKET_SYMBOLS="BTCUSDT,XRPUSDT",
    )
    env.pop("REDIS_URL")
    service = harness.Service(
        "embedded-recovery",
        [harness.PYTHON, "manage.py", "serve", "--port", str(port)],
        env,
        stack.workdir / "embedded-recovery.log",
    ).start()
    stack.services.append(service)
    gateway = Gateway(service, port)
    gateway.wait_ready()
    harness.wait_until(lambda: gateway.status()["market_data"].get("connected"), service, "no market data")
    assert gateway.status()["channel_layer"] == "in-memory"
    yield gateway, database
    service.stop()


async def test_a_client_back_on_the_embedded_server_gets_exactly_the_missed_order_updates(
    stack, embedded_live, exchange
):
    gateway, database = embedded_live
    user = await new_user(stack, "embedded", DATABASE_URL=database)
    async with desk(gateway, exchange, user, "XRPUSDT") as trader:
        client = await Follower.open(orders_url(gateway, user))
        watcher = await Follower.open(orders_url(gateway, user))
        position = client.position
        await client.client.close()
        ids = await trader.trade_while_away()
        missed = await watcher.final(ids)
        assert [m["seq"] for m in missed] == list(range(1, 1 + 2 * ORDERS))

        back = await Follower.open(orders_url(gateway, user), since=position)
        assert back.ack["recovered"] == {"orders": True}, back.ack
        back.seq = position["seq"]
        assert await back.final(ids) == missed
        live = await trader.place(side="buy", type="limit", quantity="10", price="1.00")
        await back.read_until(lambda updates: len(updates) == len(missed) + 1)
        assert (back.updates[-1]["order_id"], back.updates[-1]["seq"]) == (live, 1 + 2 * ORDERS)
        await back.client.close()
        await watcher.client.close()


# --- when the position cannot be served ----------------------------------------------------------


def snapshot_matches(snapshot: list[dict], rest_orders: list[dict]) -> None:
    """The orders snapshot holds one update per open order, as REST shows it."""
    open_orders = {str(o["id"]): o for o in rest_orders if o["status"] not in FINAL}
    sent = {m["order_id"]: m for m in snapshot if m["status"] not in FINAL}
    assert sent.keys() == open_orders.keys(), (sent.keys(), open_orders.keys())
    for order_id, message in sent.items():
        row = open_orders[order_id]
        assert (message["status"], message["quantity"], message["price"]) == (
            row["status"],
            row["quantity"],
            row["price"],
        )
    finished = {str(o["id"]): o["status"] for o in rest_orders if o["status"] in FINAL}
    for message in snapshot:
        if message["status"] in FINAL:  # a finished order in the snapshot says how it ended
            assert finished.get(message["order_id"]) == message["status"], message


async def read_snapshot(follower: Follower, count: int) -> list[dict]:
    """The order updates that follow a not-recovered ack (they carry no seq), `count` of them open."""
    seen = await follower.until_pong()
    assert all("seq" not in m for m in seen), seen
    assert len([m for m in seen if m["status"] not in FINAL]) == count, seen
    return seen


async def test_after_redis_was_flushed_the_resume_is_refused_and_the_snapshot_sent(stack, gateway):
    user = await new_user(stack, "flushed")
    async with desk(gateway, None, user, "BTCUSDT") as trader:
        client = await Follower.open(orders_url(gateway, user))
        kept = [await trader.place(side="buy", type="limit", quantity="0.01", price=p) for p in ("1000", "1001")]
        gone = await trader.place(side="buy", type="limit", quantity="0.01", price="1002")
        assert (await trader.call("POST", f"orders/{gone}/cancel/"))[0] == 200
        await client.read_until(lambda updates: len(updates) == 4)
        position = client.position
        await client.client.close()
        redis.Redis.from_url(stack.redis_url).flushdb()  # this session's own database, not 0 or 1

        back = await Follower.open(orders_url(gateway, user), since=position)
        assert back.ack["recovered"] == {"orders": False}, back.ack
        assert back.ack["positions"]["orders"]["epoch"] != position["epoch"]  # a new count begins
        assert back.ack["positions"]["orders"]["seq"] == 0
        snapshot = await read_snapshot(back, count=2)
        snapshot_matches(snapshot, await trader.orders())
        assert {m["order_id"] for m in snapshot if m["status"] not in FINAL} == set(kept)

        late = await trader.place(side="buy", type="limit", quantity="0.01", price="1003")
        back.seq = 0
        await back.read_until(lambda updates: any(m["order_id"] == late for m in updates))
        assert back.updates[-1]["seq"] == 1 and back.updates[-1]["order_id"] == late
        for order_id in [*kept, late]:
            await trader.call("POST", f"orders/{order_id}/cancel/")
        await back.client.close()


@pytest.fixture(scope="module")
def short_window(stack):
    """A daphne whose history keeps 5 events per channel (lifted or lowered through its environment)."""
    return stack.daphne(None, WS_HISTORY_SIZE="5")


async def test_a_position_older_than_the_window_is_refused_and_one_within_it_resumed(stack, short_window):
    user = await new_user(stack, "window")
    async with desk(short_window, None, user, "BTCUSDT") as trader:
        client = await Follower.open(orders_url(short_window, user))
        start = client.position
        ids = [await trader.place(side="buy", type="limit", quantity="0.01", price=f"{1000 + i}") for i in range(8)]
        await client.read_until(lambda updates: len(updates) == 8)
        await client.client.close()

        old = await Follower.open(orders_url(short_window, user), since=start)
        assert old.ack["recovered"] == {"orders": False}, old.ack
        assert old.ack["positions"]["orders"] == {"epoch": start["epoch"], "seq": 8}
        snapshot_matches(await read_snapshot(old, count=8), await trader.orders())
        await old.client.close()

        recent = await Follower.open(orders_url(short_window, user), since={"epoch": start["epoch"], "seq": 5})
        assert recent.ack["recovered"] == {"orders": True}, recent.ack
        recent.seq = 5
        await recent.read_until(lambda updates: len(updates) == 3)
        assert [m["order_id"] for m in recent.updates] == ids[5:]
        await recent.client.send({"type": "ping"})  # nothing else follows the missed three
        pong = await recent.client.recv_until(lambda m: m["type"] in {"pong", "order_update"})
        assert pong["type"] == "pong", pong
        for order_id in ids:
            await trader.call("POST", f"orders/{order_id}/cancel/")
        await recent.client.close()


@pytest.fixture(scope="module")
def short_ttl(stack):
    """A daphne whose history keeps events for 3 seconds."""
    return stack.daphne(None, WS_HISTORY_TTL="3")


async def test_a_position_older_than_the_ttl_is_refused_and_a_fresh_one_resumed(stack, short_ttl):
    user = await new_user(stack, "ttl")
    async with desk(short_ttl, None, user, "BTCUSDT") as trader:
        client = await Follower.open(orders_url(short_ttl, user))
        start = client.position
        ids = []
        for i in range(5):  # one a second: the key lives on (same epoch) while the first events age out
            if i:
                await asyncio.sleep(1)  # time must pass: this test is about the age of events
            ids.append(await trader.place(side="buy", type="limit", quantity="0.01", price=f"{1000 + i}"))
        await client.read_until(lambda updates: len(updates) == 5)
        await client.client.close()

        old = await Follower.open(orders_url(short_ttl, user), since=start)
        assert old.ack["recovered"] == {"orders": False}, old.ack
        assert old.ack["positions"]["orders"] == {"epoch": start["epoch"], "seq": 5}
        snapshot_matches(await read_snapshot(old, count=5), await trader.orders())
        await old.client.close()

        fresh = await Follower.open(orders_url(short_ttl, user), since={"epoch": start["epoch"], "seq": 4})
        assert fresh.ack["recovered"] == {"orders": True}, fresh.ack
        fresh.seq = 4
        await fresh.read_until(lambda updates: len(updates) == 1)
        assert fresh.updates[0]["order_id"] == ids[4]
        for order_id in ids:
            await trader.call("POST", f"orders/{order_id}/cancel/")
        await fresh.client.close()


# --- two publishers racing -----------------------------------------------------------------------

RACE_EVENTS = 500  # per publisher: 1000 on one user's channel

RACER = """
import sys, time
import redis
from django.conf import settings
from realtime import publish
user_id, tag, barrier = int(sys.argv[1]), sys.argv[2], sys.argv[3]
client = redis.Redis.from_url(settings.APP.redis_url)
client.incr(barrier)
while int(client.get(barrier)) < 2:  # both processes are up: start together
    time.sleep(0.001)
for i in range({count}):
    publish.publish_risk_alert(user_id, alert_type="position_limit_exceeded", severity="warning",
        message=f"{{tag}} {{i}}", limit_value="1", current_value="2", symbol="BTCUSDT")
print("done")
"""


async def run_racer(stack, user: int, tag: str, barrier: str) -> None:
    script = RACER.format(count=RACE_EVENTS)
    code = f"import sys; sys.argv = ['x', '{user}', '{tag}', '{barrier}']\n{script}"
    process = await asyncio.create_subprocess_exec(
        harness.PYTHON,
        "manage.py",
        "shell",
        "-c",
        code,
        cwd=harness.ROOT,
        env=stack.env(),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(process.communicate(), 6 * TIMEOUT)
    assert process.returncode == 0 and b"done" in output, output.decode(errors="replace")[-3000:]


async def read_alerts(client: Client, count: int) -> list[dict]:
    alerts = []
    deadline = asyncio.get_running_loop().time() + 6 * TIMEOUT
    while len(alerts) < count:
        left = deadline - asyncio.get_running_loop().time()
        message = await client.recv_until(lambda m: m["type"] in {"risk_alert", "error"}, max(left, 0.01))
        assert message["type"] == "risk_alert", message
        alerts.append(message)
    return alerts


async def test_two_publishers_racing_never_produce_a_duplicate_or_missing_seq(stack, gateway, second_gateway):
    user = await new_user(stack, "raced")
    clients = [await Client.connect(orders_url(g, user)) for g in (gateway, second_gateway)]
    try:
        acks = [await c.subscribe({"type": "subscribe", "channels": ["risk_alerts"]}) for c in clients]
        (start,) = {a["positions"]["risk_alerts"]["seq"] for a in acks}
        barrier = f"race-{uuid.uuid4().hex}"
        readers = [asyncio.create_task(read_alerts(c, 2 * RACE_EVENTS)) for c in clients]
        await asyncio.gather(run_racer(stack, user, "a", barrier), run_racer(stack, user, "b", barrier))
        seen = await asyncio.gather(*readers)
        for c in clients:  # nothing more: a pong follows the last alert
            await c.send({"type": "ping"})
            assert (await c.recv_until(lambda m: m["type"] in {"pong", "risk_alert"}))["type"] == "pong"
    finally:
        for c in clients:
            await c.close()
    redis.Redis.from_url(stack.redis_url).delete(barrier)
    expected = list(range(start + 1, start + 1 + 2 * RACE_EVENTS))
    for alerts in seen:
        assert [m["seq"] for m in alerts] == expected
        texts = [m["message"] for m in alerts]
        assert sorted(texts) == sorted(f"{tag} {i}" for tag in "ab" for i in range(RACE_EVENTS))
        for tag in "ab":  # each publisher's own events keep their order
            assert [t for t in texts if t.startswith(tag)] == [f"{tag} {i}" for i in range(RACE_EVENTS)]
    interleaved = sum(1 for x, y in zip(seen[0], seen[0][1:], strict=False) if x["message"][0] != y["message"][0])
    assert interleaved > 1, "the two publishers did not overlap: no race was tested"
    assert seen[0] == seen[1]  # both instances deliver the very same frames
    # How many frames each instance had to read back from the history to close a gap (for the record).
    print("gap fills:", [gap_fills(g) for g in (gateway, second_gateway)], "interleavings:", interleaved)


def gap_fills(gateway: Gateway) -> float:
    line = next((x for x in gateway.metrics().splitlines() if x.startswith('ws_messages_out_total{type="gap"}')), "")
    return float(line.split()[-1]) if line else 0.0


# --- in-band token refresh -----------------------------------------------------------------------

TOKEN_LIFETIME = timedelta(seconds=3)  # stands for the 5-minute token
LIFETIMES = 8  # 40 minutes of 5-minute tokens
REFRESH_MARGIN = 2.0  # seconds before expiry the client refreshes (exp is whole seconds: 2 to 3 s ahead)


def expiry_of(token: str) -> float:
    from rest_framework_simplejwt.tokens import AccessToken

    return float(AccessToken(token)["exp"])


async def test_a_connection_refreshed_in_band_outlives_many_token_lifetimes_without_reconnecting(stack, gateway):
    user = await new_user(stack, "longlived")
    token = access_token(user, lifetime=TOKEN_LIFETIME)
    async with desk(gateway, None, user, "BTCUSDT") as trader:
        client = await Follower.open(orders_url(gateway, user, token))
        socket = client.client.ws
        started, refreshes, placed = time.time(), 0, []
        while time.time() - started < LIFETIMES * TOKEN_LIFETIME.total_seconds():
            # Time must pass here: the token runs down until the client's refresh margin.
            await asyncio.sleep(max(0.0, expiry_of(token) - REFRESH_MARGIN - time.time()))
            token = access_token(user, lifetime=TOKEN_LIFETIME)
            await client.client.send({"type": "refresh", "token": token})
            reply = await client.client.recv_until(lambda m: m["type"] in {"refreshed", "error"})
            assert reply["type"] == "refreshed", reply
            assert reply["expires_at"].startswith(time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(expiry_of(token))))
            refreshes += 1
            if refreshes % 3 == 0:  # and it still receives
                placed.append(await trader.place(side="buy", type="limit", quantity="0.01", price="1000"))
                await client.read_until(lambda updates: any(m["order_id"] == placed[-1] for m in updates))
        assert client.client.ws is socket and socket.state is websockets.protocol.State.OPEN
        assert refreshes >= LIFETIMES and len(placed) >= 2
        assert time.time() - started > LIFETIMES * TOKEN_LIFETIME.total_seconds()
        for order_id in placed:
            await trader.call("POST", f"orders/{order_id}/cancel/")
        await client.client.close()


def bad_refreshes(stack, user: int) -> dict[str, str]:
    return {
        "another user's token": access_token(stack.users["bob"], lifetime=timedelta(minutes=5)),
        "an expired token": access_token(user, lifetime=timedelta(seconds=-10)),
        "a refresh token": refresh_token(user),
        "garbage": "not-a-jwt",
    }


async def test_a_refused_refresh_changes_nothing_and_the_original_token_still_expires(stack, gateway):
    user = await new_user(stack, "refused")
    token = access_token(user, lifetime=timedelta(seconds=6))  # time for the refusals and an order first
    expires = expiry_of(token)
    async with desk(gateway, None, user, "BTCUSDT") as trader:
        client = await Follower.open(orders_url(gateway, user, token))
        for what, bad in bad_refreshes(stack, user).items():
            await client.client.send({"type": "refresh", "token": bad})
            reply = await client.client.recv_until(lambda m: m["type"] in {"refreshed", "error"})
            assert (reply["type"], reply.get("code")) == ("error", 4001), (what, reply)
        order = await trader.place(side="buy", type="limit", quantity="0.01", price="1000")
        await client.read_until(lambda updates: len(updates) == 1)  # still open, still this user's
        assert client.updates[0]["order_id"] == order
        code, _reason = await client.client.closed(timeout=expires - time.time() + TIMEOUT)
        closed_at = time.time()
        await trader.call("POST", f"orders/{order}/cancel/")
    assert code == 4001
    assert closed_at >= expires - 0.5, "closed before the original token expired"
