"""The trading domain end to end over real sockets: local exchange -> runstream worker -> Redis -> daphne.

Orders, risk limits and bots are placed over REST on daphne; the worker fills paper orders on the
trades the local exchange prints (it prints no others), re-checks risk limits as prices move and
runs the bots; every event reaches the owner's /ws/trading connection through Redis.

A price is known once its trade has come back on /ws/market: the worker records the last trade
price before it publishes the trade. "Nothing arrived" is only concluded from a later event on the
same connection that the same publisher sent after the unwanted one would have been sent:
- the fill of a marker order by a later trade: the worker matches one symbol's trades one run at a
  time, in the order they were printed, and within a run fills buys before sells;
- a later revaluation round: rounds run one at a time, each publishes its portfolio messages and
  then checks the risk limits, so a round's portfolio message follows the previous round's alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from decimal import Decimal

import pytest

from tests.integration import harness
from tests.integration.harness import Client, ahttp_json
from tests.support import TIMEOUT, access_token

SLOW = TIMEOUT * 3  # a fill crosses the exchange, the worker, the database and Redis on a busy machine
CHANNELS = ["orders", "risk_alerts", "bot_status", "portfolio"]  # portfolio last: its snapshot ends the snapshot
TERMINAL = {"filled", "canceled", "rejected"}
TRADING_EVENTS = {"order_update", "risk_alert", "bot_status", "portfolio"}
MONEY = {
    "quantity",
    "filled_quantity",
    "remaining_quantity",
    "price",
    "average_price",
    "limit_value",
    "current_value",
    "total_value",
    "cash",
    "market_price",
    "market_value",
    "unrealized_pnl",
    "realized_pnl",
    "total_pnl",
    "win_rate",
    "fee",
    "fees",
    "free",
    "locked",
}
COUNTS = {"trades_today", "seq"}  # the only values a trading event may carry as JSON numbers
PLAIN_DECIMAL = re.compile(r"^-?\d+(\.\d+)?$")


@pytest.fixture
def sole_engine(stack, worker):
    """The session's worker, checked to be the only paper-trading engine on the shared database.

    A deployment runs exactly one runstream worker. A second one left running by another test (on
    its own exchange and Redis) would also fill resting orders on its own random trades, re-check
    risk limits at its own prices and run the bots, with its events going nowhere we listen.
    """
    database = worker.env["DATABASE_URL"]
    others = [
        s.name
        for s in stack.services
        if s is not worker and s.name == "runstream" and s.alive() and s.env.get("DATABASE_URL") == database
    ]
    assert not others, f"another runstream worker still runs on this session's database: {others}"
    return worker


pytestmark = pytest.mark.usefixtures("sole_engine")


# --- builders ------------------------------------------------------------------------------------


def assert_decimal_strings(message: dict) -> None:
    """Money in a trading event is a plain decimal string (null where there is none), never a JSON number."""

    def check(value: object, key: str) -> None:
        if isinstance(value, dict):
            for name, item in value.items():
                check(item, name)
        elif isinstance(value, list):
            for item in value:
                check(item, key)
        elif isinstance(value, bool) or value is None:
            return
        elif isinstance(value, int | float):
            assert key in COUNTS and isinstance(value, int), f"{key}={value!r} is a JSON number in {message}"
        elif key in MONEY:
            assert PLAIN_DECIMAL.match(value), f"{key}={value!r} is not a plain decimal string in {message}"

    check(message, "")


def is_order(message: dict, order_id: int) -> bool:
    return message["type"] == "order_update" and message["order_id"] == str(order_id)


def is_bot(message: dict, bot_id: int, status: str | None = None) -> bool:
    return (
        message["type"] == "bot_status"
        and message["bot_id"] == str(bot_id)
        and (status is None or message["status"] == status)
    )


def is_fill_of_bot(message: dict, bot_id: int) -> bool:
    return message["type"] == "order_update" and message.get("bot_id") == str(bot_id) and message["status"] == "filled"


def is_risk_alert(message: dict) -> bool:
    return message["type"] == "risk_alert"


def position(portfolio: dict, symbol: str) -> dict | None:
    return next((p for p in portfolio["positions"] if p["symbol"] == symbol), None)


def holds(portfolio: dict, symbol: str, quantity: str) -> bool:
    held = position(portfolio, symbol)
    return held is not None and Decimal(held["quantity"]) == Decimal(quantity)


def valued_at(symbol: str, price: str) -> Callable[[dict], bool]:
    def predicate(message: dict) -> bool:
        held = position(message, symbol) if message["type"] == "portfolio" else None
        return held is not None and held["market_price"] is not None and Decimal(held["market_price"]) == Decimal(price)

    return predicate


async def new_user(stack, role: str) -> int:
    """A user of one test's own: no orders, positions, limits or bots yet."""
    name = f"{role}-{uuid.uuid4().hex[:8]}"
    done = await asyncio.to_thread(stack.manage, "shell", "-c", harness.make_user_script(name, f"{name}-password-1"))
    return int(done.stdout.strip().splitlines()[-1])


@dataclass
class Trader:
    """One user: REST calls with its token and, once signed in, its /ws/trading connection.

    Every message read on the connection is kept in `seen` (and its money fields checked), so a test
    can say what arrived between two points, not only that something arrived.
    """

    gateway: harness.Gateway
    user_id: int
    client: Client | None = None
    seen: list[dict] = field(default_factory=list)
    snapshot_end: int = 0

    @property
    def token(self) -> str:
        return access_token(self.user_id)

    async def call(self, method: str, path: str, body: dict | None = None) -> tuple[int, dict | list]:
        return await ahttp_json(method, f"{self.gateway.http}/api/{path}", body, self.token)

    async def place(self, **order: str) -> dict:
        status, body = await self.call("POST", "orders/", order)
        assert status == 201, body
        return body

    async def create_bot(self, name: str, symbol: str, quote_amount: str, interval_seconds: int) -> dict:
        params = {"quote_amount": quote_amount, "interval_seconds": interval_seconds}
        status, body = await self.call(
            "POST", "bots/", {"name": name, "symbol": symbol, "strategy": "dca", "params": params}
        )
        assert status == 201, body
        return body

    async def bot_action(self, bot_id: int, action: str) -> dict:
        status, body = await self.call("POST", f"bots/{bot_id}/{action}/")
        assert status == 200, body
        return body

    async def next(self, predicate: Callable[[dict], bool], timeout: float = SLOW) -> dict:
        """The next message matching `predicate`; the ones read before it are kept in `seen` too."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"no matching message within {timeout} s; the last ones: {self.seen[-8:]}")
            try:
                message = await self.client.recv(left)
            except TimeoutError:
                continue
            if message["type"] in TRADING_EVENTS:
                assert_decimal_strings(message)
            self.seen.append(message)
            if predicate(message):
                return message

    async def order_reaches(self, order_id: int, status: str) -> dict:
        return await self.next(lambda m: is_order(m, order_id) and m["status"] == status)

    async def revalued_twice_at(self, symbol: str, price: str) -> None:
        """A revaluation round at `price`, then the next round: the first one's risk checks are done."""
        await self.next(valued_at(symbol, price))
        await self.next(lambda m: m["type"] == "portfolio")

    def updates_of(self, order_id: int) -> list[dict]:
        return [m for m in self.seen if is_order(m, order_id)]

    def statuses_of(self, order_id: int) -> list[str]:
        return [m["status"] for m in self.updates_of(order_id)]

    def alerts_since(self, mark: int) -> list[dict]:
        return [m for m in self.seen[mark:] if is_risk_alert(m)]


@contextlib.asynccontextmanager
async def signed_in(gateway, user_id: int) -> AsyncIterator[Trader]:
    """A Trader subscribed to every trading channel, its snapshot read (it ends with the portfolio)."""
    trader = Trader(gateway, user_id)
    trader.client = await Client.connect(f"{gateway.ws}/ws/trading?token={trader.token}")
    try:
        ack = await trader.client.subscribe({"type": "subscribe", "channels": CHANNELS})
        assert ack["channels"] == CHANNELS, ack
        await trader.next(lambda m: m["type"] == "portfolio")
        trader.snapshot_end = len(trader.seen)
        yield trader
    finally:
        await trader.client.close()


@dataclass
class Tape:
    """Prints trades of one symbol at the local exchange and watches them come back on /ws/market."""

    exchange: object
    symbol: str
    client: Client

    async def print_now(self, price: str, quantity: str = "1") -> dict:
        reply = await self.exchange.control("trade", symbol=self.symbol, price=price, quantity=quantity)
        return reply["trade"]

    async def print(self, price: str, quantity: str = "1") -> dict:
        """Print a trade and return once the gateway published it: the price is then the last trade price."""
        printed = await self.print_now(price, quantity)
        return await self.client.recv_until(
            lambda m: m["type"] == "trade" and m["symbol"] == self.symbol and m.get("trade_id") == printed["t"],
            timeout=SLOW,
        )


@contextlib.asynccontextmanager
async def tape(gateway, exchange, symbol: str) -> AsyncIterator[Tape]:
    client = await Client.connect(f"{gateway.ws}/ws/market")
    try:
        await client.subscribe({"type": "subscribe_trades", "symbols": [symbol]})
        yield Tape(exchange, symbol, client)
    finally:
        await client.close()


async def book_around(gateway, printed: dict) -> None:
    """Wait until the gateway has published a book for the printed trade's symbol, made after that
    trade, centred within 0.2 % of its price (the local exchange re-centres its book on a printed
    trade at its next step, then walks it a level or so a step), so orders placed well away from that
    price do not meet a book still sitting where an earlier print left it. A book from before the
    print does not count, however centred: the stored snapshot, or a round not yet published, may
    still hold the book of a print in between."""
    symbol, level, after = printed["symbol"], Decimal(printed["price"]), printed["timestamp"]

    def centred(message: dict) -> bool:
        if message["type"] != "orderbook" or not message["bids"] or not message["asks"]:
            return False
        if message["timestamp"] <= after:  # both ISO times of the exchange's clock, one format
            return False
        mid = (Decimal(message["bids"][0][0]) + Decimal(message["asks"][0][0])) / 2
        return abs(mid - level) <= level / 500

    async with await Client.connect(f"{gateway.ws}/ws/market") as market:
        await market.subscribe({"type": "subscribe_orderbook", "symbols": [symbol]})
        await market.recv_until(
            centred,
            timeout=SLOW,
        )


# --- orders --------------------------------------------------------------------------------------


async def test_a_market_order_fills_at_once_against_the_book_and_pays_the_fee(worker, live_gateway, exchange, stack):
    user = await new_user(stack, "taker")
    async with tape(live_gateway, exchange, "SOLUSDT") as sol, signed_in(live_gateway, user) as taker:
        printed = await sol.print("101.37")
        await book_around(live_gateway, printed)
        order = await taker.place(symbol="SOLUSDT", side="buy", type="market", quantity="0.25")
        filled = await taker.order_reaches(order["id"], "filled")
    price = Decimal(order["average_price"])
    assert order["status"] == "filled" and abs(price - Decimal("101.37")) < 1, "the book is near the last trade"
    assert taker.statuses_of(order["id"]) == ["new", "filled"]
    assert (filled["symbol"], filled["side"]) == ("SOLUSDT", "buy")
    assert Decimal(filled["average_price"]) == price and Decimal(filled["fee"]) > 0
    assert (Decimal(filled["filled_quantity"]), Decimal(filled["remaining_quantity"])) == (Decimal("0.25"), 0)


async def test_a_resting_limit_order_fills_at_its_price_only_when_a_trade_crosses_it(
    worker, live_gateway, exchange, stack
):
    user = await new_user(stack, "maker")
    async with tape(live_gateway, exchange, "BNBUSDT") as bnb, signed_in(live_gateway, user) as maker:
        await bnb.print("300.00")
        bought = await maker.place(symbol="BNBUSDT", side="buy", type="market", quantity="0.1")  # to sell
        resting = await maker.place(symbol="BNBUSDT", side="buy", type="limit", quantity="0.3", price="250.00")
        marker = await maker.place(symbol="BNBUSDT", side="sell", type="limit", quantity="0.1", price="350.00")
        await maker.order_reaches(resting["id"], "new")
        await bnb.print("296.00")  # below the last price, above the resting buy: no fill
        await bnb.print("350.00")  # fills the marker sell only, in the same run or a later one
        await maker.order_reaches(marker["id"], "filled")
        assert maker.statuses_of(resting["id"]) == ["new"], "a trade above a resting buy must not fill it"
        await bnb.print("249.50")  # crosses the resting buy
        filled = await maker.order_reaches(resting["id"], "filled")
        after_fill = await maker.next(lambda m: m["type"] == "portfolio" and holds(m, "BNBUSDT", "0.3"))
    assert bought["status"] == "filled" and resting["status"] == "new" and marker["status"] == "new"
    assert Decimal(filled["average_price"]) == Decimal("250"), "a resting limit order fills at its own price"
    assert Decimal(filled["filled_quantity"]) == Decimal("0.3") and Decimal(filled["remaining_quantity"]) == 0
    assert Decimal(filled["fee"]) == Decimal("0.075"), "a maker fee on 75"
    held = position(after_fill, "BNBUSDT")  # bought 0.1 and sold it at 350: flat, then bought 0.3 at 250
    assert Decimal(held["average_price"]) == Decimal("250") and Decimal(held["fees"]) > Decimal("0.075")


# Where the trade's print starts relative to the cancel request (negative: the cancel starts later).
# On an idle machine the fill wins at 0 and the cancel from about +10 ms on; the sweep crosses the
# window whatever the load, so both orders of events are tried. Correctness never waits on these.
RACE_OFFSETS = (-0.01, 0.0, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02)


async def started_after(delay: float, work: Awaitable):
    await asyncio.sleep(max(0.0, delay))
    return await work


async def test_a_cancel_racing_a_fill_ends_in_exactly_one_of_them(worker, live_gateway, exchange, stack):
    user = await new_user(stack, "racer")
    outcomes = []
    async with tape(live_gateway, exchange, "XRPUSDT") as xrp, signed_in(live_gateway, user) as racer:
        await xrp.print("0.6000")
        stock = await racer.place(symbol="XRPUSDT", side="buy", type="market", quantity=str(10 * len(RACE_OFFSETS)))
        assert stock["status"] == "filled", stock  # the markers sell it
        for offset in RACE_OFFSETS:
            printed = await xrp.print("0.6000")
            await book_around(live_gateway, printed)  # neither order below may meet the book
            raced = await racer.place(symbol="XRPUSDT", side="buy", type="limit", quantity="10", price="0.5900")
            marker = await racer.place(symbol="XRPUSDT", side="sell", type="limit", quantity="10", price="0.6200")
            assert (raced["status"], marker["status"]) == ("new", "new")
            (cancel_status, canceled), _ = await asyncio.gather(
                started_after(-offset, racer.call("POST", f"orders/{raced['id']}/cancel/")),
                started_after(offset, xrp.print_now("0.5900", quantity="10")),
            )
            await xrp.print_now("0.6200", quantity="10")  # the marker's fill comes after any fill of the raced order
            await racer.order_reaches(marker["id"], "filled")
            _, final = await racer.call("GET", f"orders/{raced['id']}/")
            outcomes.append((offset, final["status"]))

            statuses = racer.statuses_of(raced["id"])
            last = racer.updates_of(raced["id"])[-1]
            assert final["status"] in {"filled", "canceled"}, final
            assert [s for s in statuses if s in TERMINAL] == [final["status"]], (statuses, outcomes)
            fields = ("status", "filled_quantity", "remaining_quantity", "average_price")
            assert {k: last[k] for k in fields} == {k: final[k] for k in fields}
            if cancel_status == 200:
                assert canceled["status"] == "canceled" == final["status"]
                assert Decimal(final["filled_quantity"]) == 0
            else:
                assert cancel_status == 400 and "filled" in str(canceled), canceled
                assert final["status"] == "filled" and Decimal(final["average_price"]) == Decimal("0.59")
    assert len(outcomes) == len(RACE_OFFSETS), outcomes


# --- risk ----------------------------------------------------------------------------------------


async def test_a_risk_alert_is_sent_once_per_crossing_of_the_limit(worker, live_gateway, exchange, stack):
    user = await new_user(stack, "hedger")
    async with tape(live_gateway, exchange, "ADAUSDT") as ada, signed_in(live_gateway, user) as hedger:
        await ada.print("0.5000")
        status, limit = await hedger.call("POST", "risk-limits/", {"symbol": "ADAUSDT", "max_notional": "100"})
        assert status == 201 and limit["breached"] is False, limit
        bought = await hedger.place(symbol="ADAUSDT", side="buy", type="market", quantity="250")
        assert bought["status"] == "filled", bought
        first = await hedger.next(is_risk_alert)
        mark = len(hedger.seen)

        await ada.print("0.5200")
        await ada.print("0.5400")
        await hedger.revalued_twice_at("ADAUSDT", "0.5400")
        assert hedger.alerts_since(mark) == [], "no second alert while the position stays above its limit"

        await ada.print("0.3900")  # 97.5: back under 99 % of the limit, which re-arms it
        await hedger.revalued_twice_at("ADAUSDT", "0.3900")
        assert hedger.alerts_since(mark) == [], "going back under the limit is not an alert"

        await ada.print("0.4100")  # 102.5: a new crossing
        second = await hedger.next(is_risk_alert)
        mark = len(hedger.seen)
        await hedger.revalued_twice_at("ADAUSDT", "0.4100")
        assert hedger.alerts_since(mark) == [], "one alert per crossing"
    assert (first["alert_type"], first["symbol"]) == ("position_limit_exceeded", "ADAUSDT")
    assert (first["limit_value"], first["current_value"]) == ("100", "125")
    assert (second["limit_value"], second["current_value"]) == ("100", "102.5")


# --- bots ----------------------------------------------------------------------------------------


async def test_a_running_dca_bot_places_orders_that_fill_and_stops_when_told(worker, live_gateway, exchange, stack):
    user = await new_user(stack, "saver")
    async with tape(live_gateway, exchange, "ETHUSDT") as eth, signed_in(live_gateway, user) as saver:
        printed = await eth.print("2000.00")
        await book_around(live_gateway, printed)
        bot = await saver.create_bot("dca-eth", "ETHUSDT", quote_amount="100", interval_seconds=1)
        try:
            started = await saver.bot_action(bot["id"], "start")
            running = await saver.next(lambda m: is_bot(m, bot["id"], "running"))
            fills = [await saver.next(lambda m: is_fill_of_bot(m, bot["id"])) for _ in range(2)]
            await saver.next(lambda m: is_bot(m, bot["id"], "running") and m["performance"]["trades_today"] >= 2)
        finally:
            stopped_now = await saver.bot_action(bot["id"], "stop")
        stopped = await saver.next(lambda m: is_bot(m, bot["id"], "stopped"))
        _, orders = await saver.call("GET", "orders/?symbol=ETHUSDT")
    assert bot["status"] == "stopped" and started["status"] == "running" and stopped_now["status"] == "stopped"
    assert running["performance"]["trades_today"] == 0
    for fill in fills:  # 100 USDT at the last price 2000, taken from the book near it
        assert Decimal(fill["filled_quantity"]) == Decimal("0.05") and abs(Decimal(fill["average_price"]) - 2000) < 20
    counts = [m["performance"]["trades_today"] for m in saver.seen if is_bot(m, bot["id"], "running")]
    after_fills = [c for c in counts if c > 0]
    assert after_fills[:2] == [1, 2] and after_fills == sorted(after_fills), counts
    bot_orders = [o for o in orders if o["bot_id"] == bot["id"]]
    assert bot_orders and all(o["status"] == "filled" and o["type"] == "market" for o in bot_orders)
    assert stopped["performance"]["trades_today"] == len(bot_orders)


# --- one user's trading is nobody else's ---------------------------------------------------------


async def test_a_second_user_hears_nothing_of_the_first_users_trading(worker, live_gateway, exchange, stack):
    async with (
        tape(live_gateway, exchange, "BTCUSDT") as btc,
        signed_in(live_gateway, stack.users["bob"]) as bob,
        signed_in(live_gateway, stack.users["alice"]) as alice,
    ):
        await btc.print("50000.00")
        status, _ = await alice.call("POST", "risk-limits/", {"symbol": "BTCUSDT", "max_notional": "1000"})
        assert status in {200, 201}
        bought = await alice.place(symbol="BTCUSDT", side="buy", type="market", quantity="0.05")
        await alice.order_reaches(bought["id"], "filled")
        await alice.next(is_risk_alert)
        resting = await alice.place(symbol="BTCUSDT", side="buy", type="limit", quantity="0.01", price="40000.00")
        assert (await alice.call("POST", f"orders/{resting['id']}/cancel/"))[0] == 200
        await alice.order_reaches(resting["id"], "canceled")
        bot = await alice.create_bot("dca-btc", "BTCUSDT", quote_amount="100", interval_seconds=1)
        try:
            await alice.bot_action(bot["id"], "start")
            await alice.next(lambda m: is_fill_of_bot(m, bot["id"]))
        finally:
            await alice.bot_action(bot["id"], "stop")
        await alice.next(lambda m: is_bot(m, bot["id"], "stopped"))
        await btc.print("50100.00")
        await alice.next(valued_at("BTCUSDT", "50100.00"))

        marker = await bob.place(symbol="BTCUSDT", side="buy", type="limit", quantity="0.01", price="1000.00")
        await bob.order_reaches(marker["id"], "new")
        assert (await bob.call("POST", f"orders/{marker['id']}/cancel/"))[0] == 200
        await bob.order_reaches(marker["id"], "canceled")

        _, bob_orders = await bob.call("GET", "orders/?limit=1000")
        _, bob_bots = await bob.call("GET", "bots/")
        _, bob_portfolio = await bob.call("GET", "portfolio/")
    alice_orders = {m["order_id"] for m in alice.seen if m["type"] == "order_update"} | {str(bought["id"])}
    own_orders = {str(o["id"]) for o in bob_orders}
    own_bots = {str(b["id"]) for b in bob_bots}

    def bobs(message: dict) -> bool:
        kind = message["type"]
        if kind == "order_update":
            return message["order_id"] in own_orders and message["order_id"] not in alice_orders
        if kind == "bot_status":
            return message["bot_id"] in own_bots and message["bot_id"] != str(bot["id"])
        if kind == "portfolio":
            held = [(p["symbol"], p["quantity"]) for p in message["positions"]]
            return message["cash"] == bob_portfolio["cash"] and held == [
                (p["symbol"], p["quantity"]) for p in bob_portfolio["positions"]
            ]
        return kind == "heartbeat"

    snapshot, heard = bob.seen[: bob.snapshot_end], bob.seen[bob.snapshot_end :]
    assert all(bobs(m) for m in snapshot), snapshot
    assert [m["status"] for m in heard if m["type"] == "order_update"] == ["new", "canceled"], heard
    assert all(bobs(m) for m in heard), heard


async def test_other_users_orders_and_bots_are_not_found_and_left_as_they_are(worker, live_gateway, stack):
    alice, bob = Trader(live_gateway, stack.users["alice"]), Trader(live_gateway, stack.users["bob"])
    theirs = await alice.place(symbol="BTCUSDT", side="buy", type="limit", quantity="0.01", price="1000.00")
    mine = await bob.place(symbol="BTCUSDT", side="buy", type="limit", quantity="0.02", price="1000.00")
    their_bot = await alice.create_bot("alice-weekly", "BTCUSDT", quote_amount="100", interval_seconds=604800)
    my_bot = await bob.create_bot("bob-weekly", "BTCUSDT", quote_amount="100", interval_seconds=604800)
    try:
        refused = {
            "get order": await bob.call("GET", f"orders/{theirs['id']}/"),
            "cancel order": await bob.call("POST", f"orders/{theirs['id']}/cancel/"),
            "get bot": await bob.call("GET", f"bots/{their_bot['id']}/"),
            "start bot": await bob.call("POST", f"bots/{their_bot['id']}/start/"),
        }
        await alice.bot_action(their_bot["id"], "start")
        refused["stop bot"] = await bob.call("POST", f"bots/{their_bot['id']}/stop/")
        _, their_order_after = await alice.call("GET", f"orders/{theirs['id']}/")
        _, their_bot_after = await alice.call("GET", f"bots/{their_bot['id']}/")
    finally:
        await alice.bot_action(their_bot["id"], "stop")
        await alice.call("POST", f"orders/{theirs['id']}/cancel/")
        await bob.call("POST", f"orders/{mine['id']}/cancel/")
    _, my_orders = await bob.call("GET", "orders/?limit=1000")
    _, my_bots = await bob.call("GET", "bots/")
    _, their_orders = await alice.call("GET", "orders/?limit=1000")
    _, their_bots = await alice.call("GET", "bots/")

    assert {what: status for what, (status, _) in refused.items()} == dict.fromkeys(refused, 404)
    assert their_order_after["status"] == "new" and their_bot_after["status"] == "running"
    assert mine["id"] in {o["id"] for o in my_orders} and my_bot["id"] in {b["id"] for b in my_bots}
    assert not {o["id"] for o in my_orders} & {o["id"] for o in their_orders}
    assert not {b["id"] for b in my_bots} & {b["id"] for b in their_bots}
