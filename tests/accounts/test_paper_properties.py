"""Property tests over random sequences of orders, trades, book changes and cancels, through the
real services and database: money is conserved, no balance goes negative, locked never exceeds
what is held and always equals what the open orders reserve."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts import services
from accounts.exceptions import InvalidInput, InvalidState, MarketUnavailable
from accounts.matching import Trade
from accounts.models import Balance, Order, Position
from accounts.portfolio import STARTING_CASH
from tests.accounts.factories import make_symbol, make_user, set_book, set_price

pytestmark = pytest.mark.django_db

TICK, STEP = D("0.01"), D("0.001")
ticks = st.integers(min_value=9000, max_value=11000).map(lambda n: n * TICK)  # 90.00 to 110.00
steps = st.integers(min_value=1, max_value=3000).map(lambda n: n * STEP)  # 0.001 to 3
sides = st.sampled_from(["buy", "sell"])

SHAPES = {
    "limit": st.tuples(st.just("limit"), sides, steps, ticks),
    "trade": st.tuples(st.just("trade"), ticks, steps),
    "market": st.tuples(st.just("market"), sides, steps),
    "book": st.tuples(st.just("book"), ticks, steps),
    "cancel": st.tuples(st.just("cancel"), st.integers(min_value=0, max_value=50)),
    "cancel_all": st.tuples(st.just("cancel_all")),
}
# Resting orders and the trades that fill them are what most needs exercising: drawn most often.
KINDS = ["limit"] * 4 + ["trade"] * 4 + ["market"] * 2 + ["book"] * 2 + ["cancel", "cancel_all"]
operations = st.sampled_from(KINDS).flatmap(SHAPES.__getitem__)


@pytest.fixture
def symbol():
    return make_symbol("SOLUSDT", step=str(STEP), tick=str(TICK))


def run(user, operation: tuple) -> None:
    kind, *args = operation
    try:
        if kind == "limit":
            side, quantity, price = args
            services.order_place(
                user_id=user.pk, symbol="SOLUSDT", side=side, order_type="limit", quantity=quantity, price=price
            )
        elif kind == "market":
            side, quantity = args
            services.order_place(user_id=user.pk, symbol="SOLUSDT", side=side, order_type="market", quantity=quantity)
        elif kind == "trade":
            price, quantity = args
            moment = datetime.now(UTC) + timedelta(milliseconds=1)
            services.orders_match_trade(symbol="SOLUSDT", trade=Trade(price=price, quantity=quantity, time=moment))
        elif kind == "book":
            mid, depth = args
            set_price("SOLUSDT", str(mid), book=False)
            set_book(
                "SOLUSDT",
                [(str(mid - TICK * i), str(depth)) for i in range(1, 4)],
                [(str(mid + TICK * i), str(depth)) for i in range(0, 3)],
            )
        elif kind == "cancel":
            open_ids = list(
                Order.objects.filter(owner=user, status__in=Order.OPEN_STATUSES).values_list("id", flat=True)
            )
            if open_ids:
                services.order_cancel(user_id=user.pk, order_id=open_ids[args[0] % len(open_ids)])
        else:
            services.orders_cancel_all(user_id=user.pk)
    except (InvalidInput, InvalidState, MarketUnavailable):
        pass  # refused: and a refusal must change nothing, which the invariants check too


def check_invariants(user) -> None:
    held = {b.asset: b for b in Balance.objects.filter(owner=user)}
    usdt, sol = held.get("USDT"), held.get("SOL")
    position = Position.objects.filter(owner=user, symbol="SOLUSDT").first()
    open_orders = Order.objects.filter(owner=user, status__in=Order.OPEN_STATUSES)
    for balance in held.values():
        assert balance.free >= 0 and balance.locked >= 0, balance
        assert balance.locked <= balance.free + balance.locked
    usdt_total = STARTING_CASH if usdt is None else usdt.free + usdt.locked
    if position is None:
        assert usdt_total == STARTING_CASH and (sol is None or sol.free + sol.locked == 0)
        return
    # cash + the position at cost + fees paid - gains realised: what the user started with
    assert usdt_total + position.cost + position.fees_paid - position.realized_pnl == STARTING_CASH
    assert (sol.free + sol.locked if sol else 0) == position.quantity
    assert (usdt.locked if usdt else 0) == sum((o.reserved for o in open_orders if o.side == "buy"), D(0))
    assert (sol.locked if sol else 0) == sum((o.reserved for o in open_orders if o.side == "sell"), D(0))
    for order in Order.objects.filter(owner=user):
        assert 0 <= order.filled_quantity <= order.quantity
        assert order.is_open or order.reserved == 0


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(sequence=st.lists(operations, min_size=3, max_size=30))
def test_money_is_conserved_and_no_balance_goes_negative(symbol, sequence):
    user = make_user()
    for operation in sequence:
        run(user, operation)
        check_invariants(user)
