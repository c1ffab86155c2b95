"""Placing, filling and canceling paper orders through the services."""

from decimal import Decimal as D

import pytest

from accounts import services
from accounts.exceptions import InvalidInput, InvalidState, NotFound
from accounts.models import CashBalance, Fill, Order, Position
from tests.accounts.factories import make_symbol, make_user, place, reload, set_price

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def btc():
    return make_symbol("BTCUSDT", step="0.0001", tick="0.01")


def test_market_order_fills_at_the_last_trade_price():
    user = make_user()
    set_price("BTCUSDT", "50000")
    order = place(user, "buy", "0.5")
    assert order.status == "filled"
    assert order.filled_quantity == D("0.5") and order.remaining_quantity == 0
    assert order.average_price == D("50000")
    [fill] = order.fills.all()
    assert (fill.price, fill.quantity) == (D("50000"), D("0.5"))


def test_market_order_is_rejected_with_a_reason_while_no_price_is_known():
    user = make_user()
    order = place(user, "buy", "0.5")
    assert order.status == "rejected"
    assert order.reason == "no market price known yet for BTCUSDT"
    assert not Fill.objects.exists() and not Position.objects.exists()


def test_limit_order_away_from_the_market_rests_as_new():
    user = make_user()
    set_price("BTCUSDT", "50000")
    order = place(user, "buy", "0.5", price="49000")
    assert order.status == "new" and order.remaining_quantity == D("0.5") and order.average_price is None


def test_limit_buy_that_crosses_the_last_price_fills_at_once_at_that_better_price():
    user = make_user()
    set_price("BTCUSDT", "50000")
    order = place(user, "buy", "0.5", price="51000")
    assert order.status == "filled" and order.average_price == D("50000")


def test_a_fill_moves_cash_and_the_position():
    user = make_user()
    set_price("BTCUSDT", "50000")
    place(user, "buy", "0.5")
    set_price("BTCUSDT", "52000")
    place(user, "sell", "0.2")
    position = Position.objects.get(owner=user, symbol="BTCUSDT")
    assert position.quantity == D("0.3") and position.average_price == D("50000")
    assert position.realized_pnl == D("400")
    assert CashBalance.objects.get(owner=user).amount == D("100000") - D("25000") + D("10400")


def test_partial_fills_average_their_prices_and_leave_the_order_partially_filled():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    services.order_fill(order_id=order.pk, price=D("100"), quantity=D("0.25"))
    services.order_fill(order_id=order.pk, price=D("90"), quantity=D("0.25"))
    order = reload(order)
    assert order.status == "partially_filled"
    assert order.filled_quantity == D("0.5") and order.remaining_quantity == D("0.5")
    assert order.average_price == D("95")
    services.order_fill(order_id=order.pk, price=D("100"))
    order = reload(order)
    assert order.status == "filled" and order.filled_quantity == D("1")


def test_a_fill_never_exceeds_what_remains():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    fill = services.order_fill(order_id=order.pk, price=D("100"), quantity=D("5"))
    assert fill.quantity == D("1") and reload(order).status == "filled"


def test_cancel_of_an_open_order_marks_it_canceled():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    assert services.order_cancel(user_id=user.pk, order_id=order.pk).status == "canceled"
    assert reload(order).remaining_quantity == 0


def test_a_fill_after_a_cancel_changes_nothing():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    services.order_cancel(user_id=user.pk, order_id=order.pk)
    assert services.order_fill(order_id=order.pk, price=D("100")) is None
    assert reload(order).status == "canceled"
    assert not Fill.objects.exists() and not Position.objects.exists()


def test_a_cancel_after_the_fill_is_refused_and_changes_nothing():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    services.order_fill(order_id=order.pk, price=D("100"))
    with pytest.raises(InvalidState, match="already filled"):
        services.order_cancel(user_id=user.pk, order_id=order.pk)
    assert reload(order).status == "filled" and Fill.objects.count() == 1


def test_another_users_order_cannot_be_canceled_and_looks_missing():
    owner, other = make_user(), make_user()
    order = place(owner, "buy", "1", price="100")
    with pytest.raises(NotFound):
        services.order_cancel(user_id=other.pk, order_id=order.pk)
    assert reload(order).status == "new"


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"symbol": "DOGEUSDT"}, "symbol"),
        ({"side": "hold"}, "side"),
        ({"order_type": "stop"}, "type"),
        ({"quantity": D("0")}, "quantity"),
        ({"quantity": D("-1")}, "quantity"),
        ({"quantity": D("0.00015")}, "quantity"),
        ({"quantity": D("1e20")}, "quantity"),
        ({"price": None}, "price"),
        ({"price": D("0")}, "price"),
        ({"price": D("100.001")}, "price"),
        ({"order_type": "market", "price": D("100")}, "price"),
    ],
)
def test_invalid_orders_are_refused_naming_the_field_and_nothing_is_stored(overrides, field):
    user = make_user()
    request = dict(symbol="BTCUSDT", side="buy", order_type="limit", quantity=D("0.5"), price=D("100"))
    with pytest.raises(InvalidInput) as caught:
        services.order_place(user_id=user.pk, **{**request, **overrides})
    assert caught.value.field == field
    assert not Order.objects.exists()


def test_a_disabled_symbol_cannot_be_traded():
    make_symbol("ETHUSDT", enabled=False)
    with pytest.raises(InvalidInput, match="unknown or disabled symbol"):
        place(make_user(), "buy", "1", price="100", symbol="ETHUSDT")


def test_an_order_below_the_symbols_minimum_value_is_refused():
    make_symbol("BTCUSDT", min_notional="10")
    with pytest.raises(InvalidInput, match="minimum"):
        place(make_user(), "buy", "0.0001", price="100")


def test_symbols_are_matched_whatever_their_case():
    set_price("BTCUSDT", "50000")
    assert place(make_user(), "buy", "0.1", symbol="btcusdt").symbol == "BTCUSDT"


def test_matching_fills_the_resting_orders_a_trade_range_reached_at_their_limits():
    user = make_user()
    buy = place(user, "buy", "0.1", price="49000")
    sell = place(user, "sell", "0.1", price="51000")
    far = place(user, "buy", "0.1", price="40000")
    fills = services.orders_match_trades(symbol="BTCUSDT", low=D("48999"), high=D("51000"))
    assert sorted(f.order_id for f in fills) == [buy.pk, sell.pk]
    assert reload(buy).average_price == D("49000") and reload(sell).average_price == D("51000")
    assert reload(far).status == "new"
