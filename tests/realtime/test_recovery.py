"""realtime.recovery: a connection's history positions, missed events and gap reads, against MemoryHistory."""

from __future__ import annotations

from types import SimpleNamespace

import orjson
import pytest

from realtime import history, recovery
from realtime.history import MemoryHistory
from realtime.protocol import Since, Stream
from realtime.recovery import gap, key_of, load
from realtime.session import FillGap, Loaded, MarketSub, UserSub
from tests import messages

USER_ID = 7
ORDERS, ALERTS = UserSub("orders"), UserSub("risk_alerts")
TRADES = MarketSub(Stream.TRADES, "BTCUSDT")


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(clock):
    """A small in-memory history (5 events, 60 s) as the process's store, for the test only."""
    memory = MemoryHistory(size=5, ttl=60, clock=clock)
    history.set_history(memory)
    yield memory
    history.set_history(None)


async def append_orders(store: MemoryHistory, count: int, user_id: int = USER_ID) -> list[history.Appended]:
    return [
        await store.append(history.user_key(user_id, "orders"), messages.order_update(order_id=n))
        for n in range(1, count + 1)
    ]


def test_a_channel_is_keyed_by_its_user_and_a_trade_stream_by_its_symbol():
    assert key_of(ORDERS, USER_ID) == history.user_key(USER_ID, "orders")
    assert key_of(TRADES, None) == history.trades_key("BTCUSDT")


def test_a_channel_without_a_user_has_no_history():
    with pytest.raises(ValueError, match="signed-in user"):
        key_of(ORDERS, None)


async def test_without_since_each_subscription_gets_its_history_position_and_no_missed(store):
    appended = await append_orders(store, 3)

    loaded = await load((ORDERS, ALERTS), {}, USER_ID)

    alerts_epoch = (await store.position(history.user_key(USER_ID, "risk_alerts"))).epoch
    assert loaded == [Loaded(ORDERS, appended[-1].epoch, 3), Loaded(ALERTS, alerts_epoch, 0)]


async def test_a_served_since_returns_the_missed_events_in_order_and_the_position_after_them(store):
    appended = await append_orders(store, 4)
    epoch = appended[0].epoch

    (loaded,) = await load((ORDERS,), {"orders": Since(epoch, 1)}, USER_ID)

    assert loaded == Loaded(ORDERS, epoch, 4, [a.text for a in appended[1:]])
    assert [orjson.loads(text)["seq"] for text in loaded.missed] == [2, 3, 4]


async def test_a_since_at_the_last_seq_has_nothing_missed(store):
    appended = await append_orders(store, 2)

    (loaded,) = await load((ORDERS,), {"orders": Since(appended[0].epoch, 2)}, USER_ID)

    assert loaded == Loaded(ORDERS, appended[0].epoch, 2, [])


@pytest.mark.parametrize(
    ("since", "why"),
    [
        (lambda epoch: Since("another-epoch", 1), "an unknown epoch"),
        (lambda epoch: Since(epoch, 9), "a seq the history never reached"),
    ],
    ids=["unknown epoch", "seq ahead"],
)
async def test_a_since_that_cannot_be_served_gives_the_current_position_and_no_missed(store, since, why):
    appended = await append_orders(store, 3)

    (loaded,) = await load((ORDERS,), {"orders": since(appended[0].epoch)}, USER_ID)

    assert loaded == Loaded(ORDERS, appended[0].epoch, 3), why


async def test_a_since_older_than_the_window_size_is_not_served(store):
    appended = await append_orders(store, 7)  # the window keeps the last 5: seq 3 to 7

    (kept,) = await load((ORDERS,), {"orders": Since(appended[0].epoch, 2)}, USER_ID)
    (trimmed,) = await load((ORDERS,), {"orders": Since(appended[0].epoch, 1)}, USER_ID)

    assert kept.missed == [a.text for a in appended[2:]]
    assert trimmed == Loaded(ORDERS, appended[0].epoch, 7)


async def test_a_since_older_than_the_window_ttl_is_not_served(store, clock):
    appended = await append_orders(store, 2)
    clock.now += 50
    await append_orders(store, 1)
    clock.now += 20  # the first two are 70 s old, the third 20 s

    (old,) = await load((ORDERS,), {"orders": Since(appended[0].epoch, 1)}, USER_ID)
    (recent,) = await load((ORDERS,), {"orders": Since(appended[0].epoch, 2)}, USER_ID)

    assert old.missed is None
    assert [orjson.loads(text)["seq"] for text in recent.missed] == [3]


async def test_a_since_for_a_history_that_was_lost_gets_a_new_epoch(store):
    (loaded,) = await load((ORDERS,), {"orders": Since("before-the-restart", 4)}, USER_ID)

    assert loaded.missed is None
    assert loaded.seq == 0
    assert loaded.epoch != "before-the-restart"


async def test_histories_are_per_user(store):
    await append_orders(store, 3, user_id=USER_ID + 1)

    (loaded,) = await load((ORDERS,), {}, USER_ID)

    assert loaded.seq == 0


async def test_market_trades_resume_by_symbol(store):
    key = history.trades_key("BTCUSDT")
    appended = [await store.append(key, messages.trade(trade_id=n)) for n in range(3)]

    loaded = await load((TRADES, MarketSub(Stream.TRADES, "ETHUSDT")), {"BTCUSDT": Since(appended[0].epoch, 1)}, None)

    assert loaded[0] == Loaded(TRADES, appended[0].epoch, 3, [a.text for a in appended[1:]])
    assert loaded[1].seq == 0
    assert loaded[1].missed is None


async def test_a_gap_is_read_whole(store):
    appended = await append_orders(store, 5)

    texts = await gap(FillGap(ORDERS, appended[0].epoch, 1, 4), USER_ID)

    assert texts == [a.text for a in appended[1:4]]


async def test_a_gap_the_history_no_longer_holds_whole_reads_as_nothing(store):
    appended = await append_orders(store, 8)  # seq 1 to 3 trimmed

    assert await gap(FillGap(ORDERS, appended[0].epoch, 1, 5), USER_ID) == []


async def test_a_gap_of_another_epoch_reads_as_nothing(store):
    await append_orders(store, 3)

    assert await gap(FillGap(ORDERS, "another-epoch", 1, 3), USER_ID) == []


async def test_a_gap_of_a_lost_history_reads_as_nothing(store):
    assert await gap(FillGap(ORDERS, "gone", 1, 3), USER_ID) == []


# --- tickers and books: the position of the stored snapshot ------------------------------------------

TICKER, BOOK = MarketSub(Stream.TICKER, "BTCUSDT"), MarketSub(Stream.ORDERBOOK, "ETHUSDT")


class Worker:
    """The market providers as the worker's stored snapshots and status record would answer."""

    def __init__(self, snapshots: dict[str, str], epoch: str | None = "w1") -> None:
        self.snapshots, self.status, self.asked, self.status_reads = snapshots, {"epoch": epoch}, [], 0

    async def market_snapshots(self, stream, symbols) -> dict[str, str]:
        self.asked.append((stream, symbols))
        return {symbol: self.snapshots[symbol] for symbol in symbols if symbol in self.snapshots}

    def market_status(self) -> dict:
        self.status_reads += 1
        return dict(self.status)


@pytest.fixture
def worker(monkeypatch):
    """Fake market providers, a clean epoch cache and a monotonic clock the test moves."""
    fake = Worker({})
    monkeypatch.setattr(recovery.providers, "market_snapshots", fake.market_snapshots)
    monkeypatch.setattr(recovery.providers, "market_status", fake.market_status)
    monkeypatch.setattr(recovery, "_epoch_cache", None)
    fake.now = 100.0
    monkeypatch.setattr(recovery, "time", SimpleNamespace(monotonic=lambda: fake.now))
    return fake


def stored(symbol: str, seq: int) -> str:
    return history.encode_with_seq(messages.ticker(symbol), seq)


async def test_a_ticker_is_positioned_at_its_stored_snapshots_seq_in_the_worker_runs_epoch(worker):
    worker.snapshots["BTCUSDT"] = stored("BTCUSDT", 41)

    assert await recovery._state_position(TICKER) == Loaded(TICKER, "w1", 41)
    assert worker.asked == [(Stream.TICKER, ("BTCUSDT",))]


async def test_a_stream_without_a_stored_snapshot_yet_is_at_seq_0(worker):
    assert await recovery._state_position(BOOK) == Loaded(BOOK, "w1", 0)


async def test_a_stored_snapshot_without_a_seq_counts_as_0(worker):
    worker.snapshots["BTCUSDT"] = orjson.dumps(messages.ticker("BTCUSDT")).decode()

    assert await recovery._state_position(TICKER) == Loaded(TICKER, "w1", 0)


async def test_without_a_running_worker_the_epoch_is_none(worker):
    worker.status = {"connected": False}

    assert (await recovery._state_position(TICKER)).epoch == "none"


async def test_the_worker_status_is_read_at_most_once_a_second(worker):
    await recovery._state_position(TICKER)
    worker.status = {"epoch": "w2"}  # the worker restarted
    worker.now += 1.0

    assert (await recovery._state_position(TICKER)).epoch == "w1"  # cached
    assert worker.status_reads == 1

    worker.now += 0.01
    assert (await recovery._state_position(TICKER)).epoch == "w2"
    assert worker.status_reads == 2


async def test_load_positions_state_streams_by_their_snapshot_and_trades_by_their_history(worker, store):
    worker.snapshots["BTCUSDT"] = stored("BTCUSDT", 8)
    await store.append(history.trades_key("BTCUSDT"), messages.trade("BTCUSDT"))
    trades_epoch = (await store.position(history.trades_key("BTCUSDT"))).epoch

    loaded = await load((TICKER, TRADES, BOOK), {"BTCUSDT": Since("x", 1)}, None)

    assert loaded == [Loaded(TICKER, "w1", 8), Loaded(TRADES, trades_epoch, 1), Loaded(BOOK, "w1", 0)]
