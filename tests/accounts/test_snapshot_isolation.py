"""One user's snapshot loads cannot hold up another user's connect or snapshot (issue 10, item 4).

Gates instead of timings: user A's load is stopped inside the database read until the test lets it
go, and what must proceed meanwhile has to complete within the shared timeout. On the old wiring
(every read on asgiref's one sync thread) those awaits time out.
"""

from __future__ import annotations

import asyncio
import threading

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from accounts import gateway, selectors
from accounts.snapshot_pool import Budget, SnapshotPool, pool
from marketdata import latest
from realtime import middleware
from realtime.providers import providers
from tests.accounts.factories import make_bot, make_symbol, make_user, place, set_price
from tests.support import TIMEOUT

A, B = 101, 202


class Gate:
    """A stand-in for a snapshot selector: user A's reads stop until released; every read is recorded."""

    def __init__(self) -> None:
        self.reads: list[int] = []
        self.a_inside = threading.Event()
        self.release = threading.Event()

    def __call__(self, *, user_id: int, **window) -> list[dict]:
        self.reads.append(user_id)
        number = len(self.reads)
        if user_id == A:
            self.a_inside.set()
            self.release.wait(TIMEOUT * 3)
        return [{"user": user_id, "read": number}]

    async def until_a_inside(self) -> None:
        assert await asyncio.to_thread(self.a_inside.wait, TIMEOUT), "user A's load never started"


@pytest.fixture
def gate(monkeypatch) -> Gate:
    stand_in = Gate()
    monkeypatch.setattr(selectors, "order_snapshot_messages", stand_in)
    yield stand_in
    stand_in.release.set()  # never leave a pool thread stuck, whatever the test did


def test_the_trading_channels_are_served_by_the_pooled_snapshots():
    assert providers.channel_snapshots["orders"] is gateway.orders_snapshot
    assert providers.channel_snapshots["bot_status"] is gateway.bot_status_snapshot
    assert providers.channel_snapshots["portfolio"] is gateway.portfolio_snapshot


async def test_another_users_snapshot_loads_while_one_users_load_is_stuck(gate):
    stuck = asyncio.create_task(gateway.orders_snapshot(A))
    await gate.until_a_inside()
    assert await asyncio.wait_for(gateway.orders_snapshot(B), TIMEOUT) == [{"user": B, "read": 2}]
    assert not stuck.done()
    gate.release.set()
    assert await asyncio.wait_for(stuck, TIMEOUT) == [{"user": A, "read": 1}]


@pytest.mark.django_db(transaction=True)
async def test_a_connects_user_lookup_proceeds_while_a_snapshot_load_is_stuck(gate):
    """The connect's lookup runs on the shared sync thread, which snapshot loads no longer occupy."""
    user = await asyncio.to_thread(make_user, "bee")
    stuck = asyncio.create_task(gateway.orders_snapshot(A))
    await gate.until_a_inside()
    found, why = await asyncio.wait_for(middleware._active_user(user.pk, None), TIMEOUT)
    assert (found.pk, why) == (user.pk, "")
    assert not stuck.done()
    gate.release.set()
    await asyncio.wait_for(stuck, TIMEOUT)


async def test_one_user_holds_at_most_one_thread_however_many_loads_he_asks_for(gate):
    first = asyncio.create_task(gateway.orders_snapshot(A))
    await gate.until_a_inside()
    more = [asyncio.create_task(gateway.orders_snapshot(A)) for _ in range(3)]
    await asyncio.wait_for(gateway.orders_snapshot(B), TIMEOUT)  # the pool had free threads meanwhile...
    assert gate.reads == [A, B]  # ...yet A's later loads waited for his first
    assert pool.waiting(A) == 4
    gate.release.set()
    results = await asyncio.wait_for(asyncio.gather(first, *more), TIMEOUT)
    assert [r[0]["read"] for r in results] == [1, 3, 4, 5]  # in the order asked
    assert pool.waiting(A) == 0 and pool.waiting(B) == 0  # places are forgotten once used


async def test_a_failing_read_frees_the_users_place():
    own = SnapshotPool(threads=1)

    def broken(*, user_id: int) -> list[dict]:
        raise RuntimeError("database went away")

    with pytest.raises(RuntimeError, match="went away"):
        await asyncio.wait_for(own.run(A, broken, user_id=A), TIMEOUT)
    assert own.waiting(A) == 0
    assert await asyncio.wait_for(own.run(A, lambda *, user_id: [user_id], user_id=A), TIMEOUT) == [A]


# --- the per-user budget (WS_SNAPSHOT_RATE_PER_USER) ---------------------------------------------


def test_a_budget_in_debt_says_how_long_until_it_is_out_of_it():
    budget = Budget.full(rate=100, now=0.0)  # holds 4 s worth: 400
    assert budget.delay(0.0) == 0
    budget.charge(600, 0.0)  # loads are charged after the fact, so the budget can owe
    assert budget.delay(0.0) == 2.0
    assert budget.delay(1.5) == 0.5
    assert budget.delay(2.0) == 0
    assert not budget.refilled(5.9)
    assert budget.refilled(6.0)
    assert budget.delay(100.0) == 0 and budget.tokens == 400  # never more than it holds


class FakeTime:
    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


async def test_a_user_over_his_budget_waits_while_another_user_does_not():
    time_ = FakeTime()
    own = SnapshotPool(threads=2, rate=100, clock=lambda: time_.now, sleep=time_.sleep)

    def big(*, user_id: int) -> list[dict]:
        return [{}] * 600

    def small(*, user_id: int) -> list[dict]:
        return [{}]

    assert len(await own.run(A, big, user_id=A)) == 600  # within his full budget: at once, 200 owed
    await own.run(B, small, user_id=B)
    assert time_.slept == []
    await own.run(A, small, user_id=A)  # waits until the 200 are paid back at 100 a second
    assert time_.slept == [2.0]
    await own.run(B, small, user_id=B)
    assert time_.slept == [2.0]


async def test_quiet_users_places_are_forgotten():
    time_ = FakeTime()
    own = SnapshotPool(threads=2, rate=100, clock=lambda: time_.now, sleep=time_.sleep)

    def small(*, user_id: int) -> list[dict]:
        return [{}]

    for user_id in range(1000):
        await own.run(user_id, small, user_id=user_id)
        time_.now += 0.001
    assert own.users_tracked() <= 64  # only those whose budget has not refilled yet are kept


# --- cheap snapshots: the reads do not grow with the user's orders and bots ----------------------


def _reads(monkeypatch, select, user_id: int) -> tuple[int, int]:
    """(database queries, price look-ups) of one snapshot selector."""
    looked_up: list[str] = []
    real = latest.last_trade_price
    monkeypatch.setattr(latest, "last_trade_price", lambda symbol: looked_up.append(symbol) or real(symbol))
    with CaptureQueriesContext(connection) as queries:
        select(user_id=user_id)
    monkeypatch.setattr(latest, "last_trade_price", real)
    return len(queries.captured_queries), len(looked_up)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "select", [selectors.open_order_messages, selectors.bot_status_messages, selectors.portfolio_message]
)
def test_a_snapshot_costs_the_same_reads_for_one_order_and_bot_as_for_ten(monkeypatch, select):
    make_symbol("BTCUSDT")
    make_symbol("ETHUSDT")
    set_price("BTCUSDT", "50000.00")
    set_price("ETHUSDT", "3000.00")
    small, large = make_user(), make_user()
    for user, count in ((small, 1), (large, 10)):
        for n in range(count):
            symbol = ("BTCUSDT", "ETHUSDT")[n % 2]
            place(user, "buy", "0.01", price="1000.00", symbol=symbol)
            place(user, "buy", "0.01", symbol=symbol)  # a position to value
            make_bot(user, name=f"bot {n}", symbol=symbol)
    assert len(selectors.open_order_messages(user_id=large.pk)) == 10
    assert len(selectors.bot_status_messages(user_id=large.pk)) == 10
    queries_small, _ = _reads(monkeypatch, select, small.pk)
    queries_large, prices_large = _reads(monkeypatch, select, large.pk)
    assert queries_large == queries_small
    assert prices_large <= 2  # one per symbol at most, not one per bot
