"""The engine the market-data worker feeds: paper fills on trades, throttled revaluation and risk
checks on price moves, and the bot runner."""

import asyncio
import time
from decimal import Decimal as D

import pytest

from accounts import engine, services
from accounts.models import Order
from tests.accounts.factories import (
    Inbox,
    fund,
    in_thread,
    make_bot,
    make_limit,
    make_symbol,
    make_user,
    place,
    reload,
    set_price,
    ticker,
    trade,
)
from tests.support import TIMEOUT

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def alice():
    await in_thread(make_symbol)("BTCUSDT", step="0.0001")
    user = await in_thread(make_user)("alice")
    await in_thread(fund)(user, "BTC", "1")  # something to sell
    return user


@pytest.fixture
def paper():
    return engine.Engine(revalue_interval=0.01, match_interval=0.01)  # drain() waits out both intervals


async def feed(paper: engine.Engine, *messages: dict) -> None:
    for message in messages:
        await paper.handle(message)
    await paper.drain()


async def test_limit_buy_fills_when_a_trade_prints_at_or_below_its_price(paper, alice):
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    inbox = await Inbox.join(alice.pk, "orders")
    await feed(paper, trade("BTCUSDT", "49000.01"))
    assert (await in_thread(reload)(order)).status == "new"
    await feed(paper, trade("BTCUSDT", "48990"))
    update = await inbox.next()
    assert (update["status"], update["average_price"], update["remaining_quantity"]) == ("filled", "49000", "0")


async def test_limit_sell_fills_when_a_trade_prints_at_or_above_its_price(paper, alice):
    order = await in_thread(place)(alice, "sell", "0.1", price="51000")
    await feed(paper, trade("BTCUSDT", "51000"))
    order = await in_thread(reload)(order)
    assert (order.status, order.average_price) == ("filled", D("51000"))


async def test_a_resting_order_fills_up_to_each_trades_quantity(paper, alice):
    order = await in_thread(place)(alice, "buy", "1", price="49000")
    inbox = await Inbox.join(alice.pk, "orders")
    await feed(paper, trade("BTCUSDT", "48990", quantity="0.3"))
    partial = await inbox.next()
    await feed(paper, trade("BTCUSDT", "48990", quantity="5", trade_id=2))
    filled = await inbox.next()
    assert (partial["status"], partial["filled_quantity"], partial["fee"]) == ("partially_filled", "0.3", "14.7")
    assert (filled["status"], filled["filled_quantity"], filled["fee"]) == ("filled", "1", "49")
    assert (await in_thread(reload)(order)).status == "filled"


async def test_an_order_placed_after_a_dip_is_not_filled_by_the_dips_trade(paper, alice):
    dip = trade("BTCUSDT", "48000", timestamp="2026-01-01T00:00:00.000Z")  # printed before the order
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    await feed(paper, dip, trade("BTCUSDT", "50000", trade_id=2))
    assert (await in_thread(reload)(order)).status == "new"


async def test_trades_without_a_usable_quantity_or_time_match_nothing(paper, alice):
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    await feed(
        paper,
        {**trade("BTCUSDT", "48000"), "quantity": "0"},
        {**trade("BTCUSDT", "48000"), "timestamp": "yesterday"},
        {**trade("BTCUSDT", "48000"), "quantity": None},
    )
    assert (await in_thread(reload)(order)).status == "new"
    assert paper.prices == {"BTCUSDT": D("48000")}


async def test_trades_for_another_symbol_and_tickers_fill_nothing(paper, alice):
    await in_thread(make_symbol)("ETHUSDT")
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    await feed(paper, trade("ETHUSDT", "100"), ticker("BTCUSDT", "40000"))
    assert (await in_thread(reload)(order)).status == "new"


async def test_only_the_trades_of_symbols_with_an_open_limit_order_are_read_for_matching(paper, alice, monkeypatch):
    read = []

    def reading(message, symbol, price):
        read.append((symbol, message["trade_id"]))
        return real(message, symbol, price)

    real = engine._trade
    monkeypatch.setattr(engine, "_trade", reading)
    await in_thread(make_symbol)("ETHUSDT")
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")

    await feed(paper, trade("ETHUSDT", "100", trade_id=1), trade("BTCUSDT", "48000", trade_id=2))

    assert read == [("BTCUSDT", 2)]  # the ether trade's quantity and time were never parsed
    assert (await in_thread(reload)(order)).status == "filled"
    assert paper.prices == {"ETHUSDT": D("100"), "BTCUSDT": D("48000")}


async def test_past_the_pending_limit_the_oldest_trade_is_dropped_loudly_and_the_rest_match(
    paper, alice, monkeypatch, caplog
):
    monkeypatch.setattr(engine, "MAX_PENDING_TRADES", 2)
    order = await in_thread(place)(alice, "buy", "0.3", price="49000")
    prints = [trade("BTCUSDT", "48000", quantity="0.1", trade_id=i) for i in (1, 2, 3)]

    await feed(paper, *prints)  # queued before the matching run starts: one too many

    assert "trade 1 not matched" in caplog.text
    order = await in_thread(reload)(order)
    assert (order.status, order.filled_quantity) == ("partially_filled", D("0.2"))


async def test_a_burst_of_trades_is_matched_over_its_whole_price_range(paper, alice):
    buy = await in_thread(place)(alice, "buy", "0.1", price="49000")
    sell = await in_thread(place)(alice, "sell", "0.1", price="51000")
    prints = [trade("BTCUSDT", p, trade_id=i) for i, p in enumerate(["50000", "48000", "52000", "50000"])]
    await feed(paper, *prints)
    assert {(await in_thread(reload)(o)).status for o in (buy, sell)} == {"filled"}


async def test_a_canceled_order_is_not_filled_by_a_later_trade(paper, alice):
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    await in_thread(services.order_cancel)(user_id=alice.pk, order_id=order.pk)
    await feed(paper, trade("BTCUSDT", "48000"))
    assert (await in_thread(reload)(order)).status == "canceled"


class MatchRuns:
    """Records each matching run's trades (symbol -> trade ids) and when it started, then runs it."""

    def __init__(self, monkeypatch):
        self.runs: list[tuple[float, dict[str, list]]] = []
        self._real = services.orders_match_many
        self._loop = asyncio.get_running_loop()
        self._ran = asyncio.Condition()
        monkeypatch.setattr(services, "orders_match_many", self)

    def __call__(self, *, trades, prices):  # in the ORM's thread
        ids = {symbol: [t.trade_id for t in pending] for symbol, pending in trades.items()}
        self.runs.append((time.monotonic(), ids))
        result = self._real(trades=trades, prices=prices)
        asyncio.run_coroutine_threadsafe(self._tell(), self._loop).result(TIMEOUT)
        return result

    async def _tell(self) -> None:
        async with self._ran:
            self._ran.notify_all()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(TIMEOUT), self._ran:
            await self._ran.wait_for(lambda: len(self.runs) >= count)


async def test_matching_runs_start_at_most_once_per_match_interval(alice, monkeypatch):
    runs = MatchRuns(monkeypatch)
    await in_thread(fund)(alice, "USDT", "1000000")
    await in_thread(place)(alice, "buy", "5", price="49000")  # open: every trade is read
    paper = engine.Engine(revalue_interval=0.01, match_interval=0.3)

    await paper.handle_many([trade("BTCUSDT", "48000", quantity="0.1", trade_id=1)])
    await runs.wait_for(1)
    await paper.handle_many([trade("BTCUSDT", "48000", quantity="0.1", trade_id=2)])
    await runs.wait_for(2)
    await paper.drain()

    (first, _), (second, _) = runs.runs
    assert second - first >= 0.29  # the second trade waited for the interval, not for another trade


async def test_trades_that_arrive_during_the_pause_are_matched_together_in_order(alice, monkeypatch):
    runs = MatchRuns(monkeypatch)
    await in_thread(fund)(alice, "USDT", "1000000")
    await in_thread(make_symbol)("ETHUSDT")
    await in_thread(place)(alice, "buy", "5", price="49000")
    await in_thread(place)(alice, "buy", "5", price="90", symbol="ETHUSDT")
    paper = engine.Engine(revalue_interval=0.01, match_interval=0.2)

    await paper.handle_many([trade("BTCUSDT", "48000", quantity="0.1", trade_id=1)])
    await runs.wait_for(1)
    await paper.handle_many([trade("BTCUSDT", "48000", quantity="0.1", trade_id=n) for n in (2, 3)])
    await paper.handle_many([trade("ETHUSDT", "80", quantity="0.1", trade_id=4)])
    await paper.drain()

    assert [ids for _at, ids in runs.runs] == [{"BTCUSDT": ["1"]}, {"BTCUSDT": ["2", "3"], "ETHUSDT": ["4"]}]


async def test_handle_many_takes_each_message_in_order(paper, alice):
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    await paper.handle_many([ticker("BTCUSDT", "50000"), trade("BTCUSDT", "48000"), ticker("BTCUSDT", "50100")])
    await paper.drain()
    assert paper.prices == {"BTCUSDT": D("50100")}  # the last message's price
    assert (await in_thread(reload)(order)).status == "filled"


async def test_messages_without_a_usable_price_or_of_other_types_are_ignored(paper, alice):
    await feed(
        paper,
        {"type": "orderbook", "symbol": "BTCUSDT", "bids": [], "asks": []},
        {"type": "trade", "symbol": "BTCUSDT", "price": "NaN"},
        {"type": "trade", "symbol": "BTCUSDT", "price": 1.5},
        {"type": "ticker", "symbol": "BTCUSDT"},
    )
    assert paper.prices == {}


async def test_price_moves_send_holders_one_portfolio_a_second_at_most(alice):
    paper = engine.Engine(revalue_interval=0.5)
    set_price("BTCUSDT", "50000")
    await in_thread(place)(alice, "buy", "0.5")
    outsider = await in_thread(make_user)("bob")
    theirs = await Inbox.join(outsider.pk)
    inbox = await Inbox.join(alice.pk, "portfolio")
    for price in ["50100", "50200", "50300", "50400"]:
        await paper.handle(ticker("BTCUSDT", price))
        await asyncio.sleep(0.02)  # let the first revaluation start before the next price
    first = await inbox.next()
    assert first["positions"][0]["market_price"] == "50100"
    assert await inbox.all(within=0.3) == []  # the rest waits for the interval
    second = await inbox.next()
    assert second["positions"][0]["market_price"] == "50400"  # then the newest price, once
    await paper.drain()
    assert await inbox.all(within=0.7) == []
    assert await theirs.all(within=0.1) == []


async def test_a_price_move_over_the_limit_alerts_once_per_crossing(alice):
    paper = engine.Engine(revalue_interval=0.05)
    set_price("BTCUSDT", "40000")
    await in_thread(place)(alice, "buy", "0.1")  # notional 4000
    await in_thread(make_limit)(alice, "BTCUSDT", "5000")
    inbox = await Inbox.join(alice.pk, "risk_alerts")
    for price in ["51000", "52000", "53000"]:  # over from the first, alert once
        await feed(paper, ticker("BTCUSDT", price))
    alert = await inbox.next()
    assert (alert["current_value"], alert["limit_value"]) == ("5100", "5000")
    assert await inbox.all(within=0.2) == []
    await feed(paper, ticker("BTCUSDT", "45000"))  # back under
    await feed(paper, ticker("BTCUSDT", "50500"))  # and over again
    assert (await inbox.next())["current_value"] == "5050"


async def test_a_running_dca_bot_buys_its_quote_amount_each_interval(alice):
    set_price("BTCUSDT", "30000")
    bot = await in_thread(make_bot)(alice, params={"quote_amount": "100", "interval_seconds": 60})
    await in_thread(services.bot_start)(user_id=alice.pk, bot_id=bot.pk)
    inbox = await Inbox.join(alice.pk, "bot_status")
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.Engine().run_bots(stop, tick=0.05))
    status = await inbox.next()
    await asyncio.sleep(0.3)  # more ticks, but the interval has not elapsed
    stop.set()
    await asyncio.wait_for(runner, TIMEOUT)
    orders = await in_thread(lambda: list(Order.objects.filter(bot=bot)))()
    assert [(o.side, o.order_type, o.quantity, o.status) for o in orders] == [("buy", "market", D("0.0033"), "filled")]
    assert status["performance"]["trades_today"] == 1


async def test_a_stopped_bot_places_nothing(alice):
    set_price("BTCUSDT", "30000")
    bot = await in_thread(make_bot)(alice)
    stop = asyncio.Event()
    runner = asyncio.create_task(engine.Engine().run_bots(stop, tick=0.05))
    await asyncio.sleep(0.2)
    stop.set()
    await asyncio.wait_for(runner, TIMEOUT)
    assert not await in_thread(lambda: Order.objects.filter(bot=bot).exists())()


async def test_the_module_entry_points_delegate_to_one_engine(alice):
    order = await in_thread(place)(alice, "buy", "0.1", price="49000")
    await engine.handle_market_messages([trade("BTCUSDT", "48000")])
    await engine.drain()
    assert (await in_thread(reload)(order)).status == "filled"
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(engine.run_bots(stop), TIMEOUT)
