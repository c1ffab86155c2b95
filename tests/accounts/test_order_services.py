"""Placing, filling and canceling paper orders through the services: spot balances, fees, the book."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from accounts import services
from accounts.exceptions import InvalidInput, InvalidState, MarketUnavailable, NotFound
from accounts.matching import Reach, Trade
from accounts.models import Fill, Order, Position
from marketdata import latest
from tests.accounts.factories import balance, fund, make_symbol, make_user, place, reload, set_book, set_price

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def btc(settings):
    return make_symbol("BTCUSDT", step="0.0001", tick="0.01")


def trade_at(price: str, quantity: str = "10", *, after: datetime | None = None) -> Trade:
    moment = (after or datetime.now(UTC)) + timedelta(milliseconds=1)
    return Trade(price=D(price), quantity=D(quantity), time=moment)


# --- market orders -------------------------------------------------------------------------------


def test_a_market_order_fills_at_the_book_and_pays_the_taker_fee():
    user = make_user()
    set_price("BTCUSDT", "50000")
    order = place(user, "buy", "0.5")
    assert order.status == "filled"
    assert order.filled_quantity == D("0.5") and order.remaining_quantity == 0
    assert order.average_price == D("50000") and order.fee == D("25")
    [fill] = order.fills.all()
    assert (fill.price, fill.quantity, fill.fee, fill.is_maker) == (D("50000"), D("0.5"), D("25"), False)
    assert balance(user, "USDT") == (D("100000") - D("25000") - D("25"), 0)
    assert balance(user, "BTC") == (D("0.5"), 0)


def test_a_market_order_bigger_than_the_top_level_gets_the_vwap_of_the_levels_it_took():
    user = make_user()
    set_price("BTCUSDT", "100", book=False)
    set_book("BTCUSDT", [("99", "5")], [("100", "0.5"), ("101", "1"), ("102", "2")])
    order = place(user, "buy", "1.2")
    assert order.status == "filled"
    assert order.average_price == D("100.583333333333")
    assert [(f.price, f.quantity) for f in order.fills.order_by("id")] == [(D("100"), D("0.5")), (D("101"), D("0.7"))]
    assert order.fee == D("0.0500") + D("0.0707")


def test_what_the_book_cannot_fill_is_canceled_with_a_reason():
    user = make_user()
    set_price("BTCUSDT", "100", book=False)
    set_book("BTCUSDT", [("99", "5")], [("100", "0.5")])
    order = place(user, "buy", "2")
    assert order.status == "canceled" and order.filled_quantity == D("0.5")
    assert "held 0.5 of 2" in order.reason and balance(user, "BTC") == (D("0.5"), 0)


def test_a_market_order_is_refused_while_no_price_is_known():
    with pytest.raises(MarketUnavailable, match="no market price known yet for BTCUSDT"):
        place(make_user(), "buy", "0.5")
    assert not Order.objects.exists()


def test_a_market_order_is_refused_on_a_price_older_than_max_price_age(settings):
    latest.record_trade_price("BTCUSDT", "50000", at_ms=latest.now_ms() - 11_000)
    set_book("BTCUSDT", [("50000", "1")], [("50000", "1")])
    with pytest.raises(MarketUnavailable, match="MAX_PRICE_AGE"):
        place(make_user(), "buy", "0.1")
    assert not Order.objects.exists()


def test_a_market_order_is_refused_without_an_order_book():
    set_price("BTCUSDT", "50000", book=False)
    with pytest.raises(MarketUnavailable, match="order book"):
        place(make_user(), "buy", "0.1")


# --- buying power --------------------------------------------------------------------------------


def test_a_buy_beyond_the_balance_is_refused_saying_what_is_missing():
    user = make_user()
    set_price("BTCUSDT", "50000")
    with pytest.raises(InvalidInput) as caught:
        place(user, "buy", "1000")
    message = caught.value.message
    assert "insufficient balance" in message and "50050000 USDT" in message and "100000 USDT free" in message
    assert not Order.objects.exists() and balance(user) == (D("100000"), 0)


def test_a_sell_of_what_is_not_held_is_refused():
    set_price("BTCUSDT", "50000")
    with pytest.raises(InvalidInput, match="needs 1 BTC"):
        place(make_user(), "sell", "1")
    with pytest.raises(InvalidInput, match="needs 1 BTC"):
        place(make_user(), "sell", "1", price="60000")
    assert not Order.objects.exists()


def test_a_limit_buy_reserves_its_value_and_fee_and_a_cancel_releases_it():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    assert order.reserved == D("100.1") and balance(user) == (D("99899.9"), D("100.1"))
    services.order_cancel(user_id=user.pk, order_id=order.pk)
    assert reload(order).reserved == 0 and balance(user) == (D("100000"), 0)


def test_a_limit_sell_reserves_the_base_asset():
    user = make_user()
    fund(user, "BTC", "2")
    place(user, "sell", "1.5", price="60000")
    assert balance(user, "BTC") == (D("0.5"), D("1.5"))
    with pytest.raises(InvalidInput, match="missing 1 BTC"):
        place(user, "sell", "1.5", price="60000")


# --- limit orders --------------------------------------------------------------------------------


def test_limit_order_away_from_the_market_rests_as_new():
    user = make_user()
    set_price("BTCUSDT", "50000")
    order = place(user, "buy", "0.5", price="49000")
    assert order.status == "new" and order.remaining_quantity == D("0.5") and order.average_price is None


def test_a_limit_buy_that_crosses_the_book_takes_it_as_a_taker_and_rests_with_the_rest():
    user = make_user()
    set_price("BTCUSDT", "100", book=False)
    set_book("BTCUSDT", [("99", "5")], [("100", "0.5"), ("101", "1"), ("103", "5")])
    order = place(user, "buy", "2", price="101")
    assert order.status == "partially_filled" and order.filled_quantity == D("1.5")
    assert all(not f.is_maker for f in order.fills.all())
    # left reserved: 0.5 at 101 plus its fee, and what the taker fills cost less than reserved
    assert order.reserved == D("202.202") - D("50.05") - D("101.101")
    assert balance(user)[1] == order.reserved


def test_a_resting_order_fills_at_most_the_crossing_trades_quantity_as_a_maker():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    services.orders_match_trade(symbol="BTCUSDT", trade=trade_at("99", "0.3"))
    order = reload(order)
    assert (order.status, order.filled_quantity, order.average_price) == ("partially_filled", D("0.3"), D("100"))
    assert order.fee == D("0.03") and Fill.objects.get().is_maker
    services.orders_match_trade(symbol="BTCUSDT", trade=trade_at("100", "5"))
    order = reload(order)
    assert (order.status, order.filled_quantity, order.fee) == ("filled", D("1"), D("0.1"))
    assert order.reserved == 0 and balance(user) == (D("100000") - D("100") - D("0.1"), 0)


def test_an_order_never_fills_from_a_trade_printed_before_it_was_placed():
    user = make_user()
    dip = Trade(price=D("90"), quantity=D("10"), time=datetime.now(UTC) - timedelta(seconds=1))
    order = place(user, "buy", "1", price="95")
    assert services.orders_match_trade(symbol="BTCUSDT", trade=dip) == []
    assert reload(order).status == "new"
    services.orders_match_trade(symbol="BTCUSDT", trade=trade_at("95", after=order.created_at))
    assert reload(order).status == "filled"


def test_a_trade_fills_the_oldest_order_first_at_a_price_level():
    user = make_user()
    first, second = place(user, "buy", "1", price="100"), place(user, "buy", "1", price="100")
    better = place(user, "buy", "1", price="100.5")
    services.orders_match_trade(symbol="BTCUSDT", trade=trade_at("100", "1.5"))
    assert [reload(o).filled_quantity for o in (better, first, second)] == [D("1"), D("0.5"), D("0")]


def test_matching_fills_resting_orders_of_both_sides_at_their_limits():
    user = make_user()
    fund(user, "BTC", "1")
    buy = place(user, "buy", "0.1", price="49000")
    sell = place(user, "sell", "0.1", price="51000")
    far = place(user, "buy", "0.1", price="40000")
    fills = services.orders_match_trades(
        symbol="BTCUSDT", trades=[trade_at("48999", after=far.created_at), trade_at("51000", after=far.created_at)]
    )
    assert sorted(f.order_id for f in fills) == [buy.pk, sell.pk]
    assert reload(buy).average_price == D("49000") and reload(sell).average_price == D("51000")
    assert reload(far).status == "new"


def test_matching_many_symbols_fills_each_symbols_orders_and_skips_symbols_without_any(settings):
    make_symbol("ETHUSDT")
    user = make_user()
    btc_buy = place(user, "buy", "0.1", price="49000")
    eth_buy = place(user, "buy", "1", price="2000", symbol="ETHUSDT")
    after = eth_buy.created_at
    fills = services.orders_match_many(
        trades={
            "BTCUSDT": [trade_at("50000", after=after), trade_at("48000", after=after)],
            "ETHUSDT": [trade_at("1990", after=after)],
            "ADAUSDT": [trade_at("1", after=after)],  # no order at all: nothing read beyond the reach
        }
    )
    assert sorted(f.order_id for f in fills) == sorted([btc_buy.pk, eth_buy.pk])
    assert reload(btc_buy).average_price == D("49000") and reload(eth_buy).average_price == D("2000")


def test_the_trades_of_one_run_fill_one_after_another_in_the_order_they_printed():
    user = make_user()
    high = place(user, "buy", "1", price="100")
    low = place(user, "buy", "1", price="90")
    fills = services.orders_match_trades(
        symbol="BTCUSDT", trades=[trade_at("100", "1", after=low.created_at), trade_at("90", "1", after=low.created_at)]
    )
    assert [f.order_id for f in fills] == [high.pk, low.pk]


def test_a_fill_moves_the_balances_and_the_position_with_fees():
    user = make_user()
    set_price("BTCUSDT", "50000")
    place(user, "buy", "0.5")
    set_price("BTCUSDT", "52000")
    place(user, "sell", "0.2")
    position = Position.objects.get(owner=user, symbol="BTCUSDT")
    assert position.quantity == D("0.3") and position.average_price == D("50000")
    assert position.realized_pnl == D("400") and position.fees_paid == D("25") + D("10.4")
    assert balance(user) == (D("100000") - D("25025") + D("10400") - D("10.4"), 0)
    assert balance(user, "BTC") == (D("0.3"), 0)


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
    assert balance(user)[1] == 0, "what the fills did not use is released when the order is filled"


def test_a_fill_never_exceeds_what_remains():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    fill = services.order_fill(order_id=order.pk, price=D("100"), quantity=D("5"))
    assert fill.quantity == D("1") and reload(order).status == "filled"


def test_a_fill_the_user_cannot_pay_ends_the_order_once_with_the_reason():
    user = make_user()
    order = place(user, "buy", "1", price="100")
    fund(user, "USDT", "0")
    # above its limit the reservation does not cover it and nothing else is free
    assert services.order_fill(order_id=order.pk, price=D("200")) is None
    order = reload(order)
    assert order.status == "rejected" and "could not be filled" in order.reason
    assert order.reserved == 0 and balance(user) == (D("100.1"), 0)
    assert services.order_fill(order_id=order.pk, price=D("100")) is None


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


def test_cancel_all_cancels_the_users_open_orders_of_a_symbol_or_all():
    make_symbol("ETHUSDT")
    user, other = make_user(), make_user()
    btc = [place(user, "buy", "0.1", price="100") for _ in range(2)]
    eth = place(user, "buy", "0.1", price="100", symbol="ETHUSDT")
    theirs = place(other, "buy", "0.1", price="100")
    assert {o.pk for o in services.orders_cancel_all(user_id=user.pk, symbol="btcusdt")} == {o.pk for o in btc}
    assert reload(eth).status == "new"
    assert [o.pk for o in services.orders_cancel_all(user_id=user.pk)] == [eth.pk]
    assert reload(theirs).status == "new" and balance(user) == (D("100000"), 0)


def test_open_orders_are_capped_per_user(settings):
    settings.APP = type(settings.APP)(**{**settings.APP.__dict__, "max_open_orders_per_user": 2})
    user = make_user()
    place(user, "buy", "0.1", price="100")
    place(user, "buy", "0.1", price="100")
    with pytest.raises(InvalidInput, match="MAX_OPEN_ORDERS_PER_USER=2"):
        place(user, "buy", "0.1", price="100")
    assert Order.objects.filter(owner=user).count() == 2


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
        ({"quantity": D("0.1234567890123")}, "quantity"),
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


def test_amounts_are_stored_exactly_on_every_database():
    make_symbol("BTCUSDT", step="0.000000000001", tick="0.000000000001")
    user = make_user()
    fund(user, "USDT", "999999999999")
    order = place(user, "buy", "123456.123456789012", price="1.000000000001")
    stored = Order.objects.get(pk=order.pk)
    assert stored.quantity == D("123456.123456789012") and stored.price == D("1.000000000001")
    assert stored.reserved == order.reserved and balance(user)[1] == order.reserved


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


def test_a_fill_that_would_overflow_a_balance_ends_the_order_once_and_the_portfolio_still_reads():
    from accounts import selectors

    user = make_user()
    fund(user, "USDT", "999999999999999999")
    fund(user, "BTC", "1")
    order = place(user, "sell", "1", price="100")
    assert services.orders_match_trade(symbol="BTCUSDT", trade=trade_at("100", "1", after=order.created_at)) == []
    order = reload(order)
    assert order.status == "rejected" and "could not be filled" in order.reason
    assert balance(user, "BTC") == (D("1"), 0), "the reservation is released, nothing else changed"
    assert selectors.portfolio_get(user_id=user.pk).cash == D("999999999999999999")
    assert services.orders_match_trade(symbol="BTCUSDT", trade=trade_at("100", "1")) == [], "not retried"


# --- the engine's reach query ---------------------------------------------------------------------------


def test_the_reach_of_a_symbol_is_its_best_open_limits_read_afresh_each_time():
    from accounts import selectors

    make_symbol("ETHUSDT", step="0.001", tick="0.01")
    user = make_user()
    fund(user, "USDT", "100000")
    fund(user, "BTC", "5")
    assert selectors.orders_reach(symbols=["BTCUSDT"]) == {}

    place(user, "buy", "0.1", "50000.00")
    low_buy = place(user, "buy", "0.1", "49000.00")
    place(user, "sell", "0.1", "52000.00")
    place(user, "buy", "0.1", "2000.00", symbol="ETHUSDT")

    reach = selectors.orders_reach(symbols=["BTCUSDT"])
    assert reach == {"BTCUSDT": Reach(highest_buy=D("50000.00"), lowest_sell=D("52000.00"))}  # only what was asked
    assert isinstance(reach["BTCUSDT"].highest_buy, D)

    services.order_cancel(user_id=user.pk, order_id=reach_order_id(user, "50000.00"))
    assert selectors.orders_reach(symbols=["BTCUSDT", "ETHUSDT"]) == {
        "BTCUSDT": Reach(highest_buy=low_buy.price, lowest_sell=D("52000.00")),
        "ETHUSDT": Reach(highest_buy=D("2000.00"), lowest_sell=None),
    }


def reach_order_id(user, price: str) -> int:
    return Order.objects.get(owner=user, price=D(price)).pk
