from decimal import Decimal as D

from accounts.matching import Match, PriceRange, RestingOrder, immediate_price, match_resting


def resting(order_id: int, side: str, price: str, remaining: str = "1") -> RestingOrder:
    return RestingOrder(order_id=order_id, side=side, price=D(price), remaining=D(remaining))


def test_limit_buy_fills_when_a_trade_prints_at_or_below_its_price():
    orders = [resting(1, "buy", "100"), resting(2, "buy", "99.99")]
    assert match_resting(orders, PriceRange.of(D("100"))) == [Match(1, D("100"), D("1"))]
    assert [m.order_id for m in match_resting(orders, PriceRange.of(D("99")))] == [1, 2]


def test_limit_sell_fills_when_a_trade_prints_at_or_above_its_price():
    orders = [resting(1, "sell", "100"), resting(2, "sell", "100.01")]
    assert [m.order_id for m in match_resting(orders, PriceRange.of(D("100")))] == [1]
    assert [m.order_id for m in match_resting(orders, PriceRange.of(D("101")))] == [1, 2]


def test_resting_orders_fill_at_their_limit_price_for_all_that_remains():
    [match] = match_resting([resting(7, "buy", "100", remaining="0.25")], PriceRange.of(D("90")))
    assert match == Match(order_id=7, price=D("100"), quantity=D("0.25"))


def test_nothing_fills_when_trades_stay_away_from_the_limits():
    orders = [resting(1, "buy", "90"), resting(2, "sell", "110")]
    assert match_resting(orders, PriceRange(D("95"), D("105"))) == []


def test_a_range_of_coalesced_trades_fills_both_sides_it_reached():
    prices = PriceRange.of(D("100")).including(D("89")).including(D("111"))
    orders = [resting(1, "buy", "90"), resting(2, "sell", "110")]
    assert [m.order_id for m in match_resting(orders, prices)] == [1, 2]


def test_best_priced_orders_fill_first_then_the_oldest():
    orders = [resting(3, "buy", "100"), resting(1, "buy", "100"), resting(2, "buy", "101")]
    assert [m.order_id for m in match_resting(orders, PriceRange.of(D("99")))] == [2, 1, 3]


def test_a_market_order_fills_at_the_last_price_and_not_without_one():
    assert immediate_price("market", "buy", None, D("50000")) == D("50000")
    assert immediate_price("market", "sell", None, None) is None


def test_a_limit_order_that_crosses_the_last_price_fills_at_once_at_that_price():
    assert immediate_price("limit", "buy", D("51000"), D("50000")) == D("50000")
    assert immediate_price("limit", "sell", D("49000"), D("50000")) == D("50000")


def test_a_limit_order_away_from_the_last_price_rests():
    assert immediate_price("limit", "buy", D("49000"), D("50000")) is None
    assert immediate_price("limit", "sell", D("51000"), D("50000")) is None
    assert immediate_price("limit", "buy", D("49000"), None) is None
