"""Fencing where fills are written: a worker whose term is over can no longer fill an order."""

from __future__ import annotations

import contextlib
from datetime import UTC, datetime
from decimal import Decimal as D

import pytest
from django.db import transaction

from accounts import matching, services
from accounts.models import Balance, Fill
from leadership import fence
from leadership.exceptions import StaleLeader
from leadership.models import Fence
from tests.accounts.factories import make_symbol, make_user, place, reload, set_price

pytestmark = pytest.mark.django_db


@contextlib.contextmanager
def acting_for(token: int | None):
    """What the leading worker does for its term: every write it makes carries its token."""
    reset = fence.current.set(token)
    try:
        yield
    finally:
        fence.current.reset(reset)


@pytest.fixture
def resting_order():
    make_symbol("BTCUSDT", step="0.0001", tick="0.01")
    set_price("BTCUSDT", "50000")
    user = make_user()
    order = place(user, "buy", "0.5", price="49000")
    assert order.status == "new"
    return order


def test_a_claim_records_the_highest_token_and_its_holder():
    fence.fence_claim(token=3, holder="host-a:1")
    fence.fence_claim(token=5, holder="host-b:2")
    row = Fence.objects.get(name=fence.WORKER)
    assert (row.token, row.holder) == (5, "host-b:2")
    assert fence.fence_high_water() == 5


def test_an_older_token_cannot_claim_and_changes_nothing():
    fence.fence_claim(token=5, holder="host-b:2")
    with pytest.raises(StaleLeader, match="4 is older than 5"):
        fence.fence_claim(token=4, holder="host-a:1")
    assert Fence.objects.get(name=fence.WORKER).holder == "host-b:2"


def test_the_high_water_mark_is_0_before_any_leader():
    assert fence.fence_high_water() == 0


def balances_of(user_id: int) -> list[tuple]:
    return list(Balance.objects.filter(owner_id=user_id).order_by("asset").values_list("asset", "free", "locked"))


def test_a_stale_leaders_fill_is_refused_and_changes_nothing(resting_order):
    fence.fence_claim(token=8, holder="new-leader")
    before = balances_of(resting_order.owner_id)
    with acting_for(7), pytest.raises(StaleLeader, match="fencing token 7 is older than 8"):
        services.order_fill(order_id=resting_order.pk, price=D("49000"))
    order = reload(resting_order)
    assert order.status == "new" and order.filled_quantity == 0
    assert not Fill.objects.filter(order=order).exists()
    assert balances_of(order.owner_id) == before


def test_the_current_leaders_fill_goes_through_once(resting_order):
    fence.fence_claim(token=8, holder="new-leader")
    with acting_for(8):
        services.order_fill(order_id=resting_order.pk, price=D("49000"))
        assert services.order_fill(order_id=resting_order.pk, price=D("49000")) is None  # already filled
    assert reload(resting_order).status == "filled"
    assert Fill.objects.filter(order=resting_order).count() == 1


def test_a_newer_token_than_any_claim_raises_the_mark_in_the_fill_transaction(resting_order):
    fence.fence_claim(token=2, holder="a")
    with acting_for(3):
        services.order_fill(order_id=resting_order.pk, price=D("49000"))
    assert fence.fence_high_water() == 3


def test_fills_outside_a_leaders_term_are_not_fenced(resting_order):
    """REST requests and the embedded mode carry no token: an immediate fill is not the worker's."""
    fence.fence_claim(token=8, holder="leader")
    services.order_fill(order_id=resting_order.pk, price=D("49000"))
    assert reload(resting_order).status == "filled"


def test_matching_by_a_stale_leader_fills_nothing(resting_order):
    """The engine's matching run survives the refusal (it logs it) and writes no fill."""
    fence.fence_claim(token=8, holder="new-leader")
    with acting_for(7):
        trade = matching.Trade(price=D("48000"), quantity=D("1"), time=datetime.now(UTC))
        fills = services.orders_match_trades(symbol="BTCUSDT", trades=[trade])
    assert fills == []
    assert reload(resting_order).status == "new"


@pytest.mark.django_db(transaction=True)
def test_the_check_must_run_inside_the_writes_transaction():
    with acting_for(1), pytest.raises(RuntimeError, match="inside the transaction"):
        fence.fence_check()
    with acting_for(1), transaction.atomic():
        fence.fence_check()
