from datetime import UTC, datetime
from decimal import Decimal as D

import pytest

from accounts.matching import Match, Reach, RestingOrder, Trade, allocate, crosses, vwap, walk_book

AT = datetime(2026, 1, 1, tzinfo=UTC)


def resting(order_id: int, side: str, price: str, remaining: str = "1") -> RestingOrder:
    return RestingOrder(order_id=order_id, side=side, price=D(price), remaining=D(remaining))


def trade(price: str, quantity: str = "10") -> Trade:
    return Trade(price=D(price), quantity=D(quantity), time=AT)


def test_a_buy_is_crossed_by_a_trade_at_or_below_its_price_and_a_sell_at_or_above():
    assert crosses("buy", D("100"), D("100")) and crosses("buy", D("100"), D("99"))
    assert not crosses("buy", D("100"), D("100.01"))
    assert crosses("sell", D("100"), D("100")) and crosses("sell", D("100"), D("101"))
    assert not crosses("sell", D("100"), D("99.99"))


def test_a_trade_fills_resting_orders_at_their_own_limit_price():
    assert allocate([resting(1, "buy", "100")], trade("90")) == [Match(1, D("100"), D("1"))]


def test_a_trade_fills_at_most_its_own_quantity():
    [match] = allocate([resting(1, "buy", "100", remaining="1.0")], trade("100", quantity="0.3"))
    assert match.quantity == D("0.3")


def test_best_price_first_then_oldest_first_at_a_level_share_the_trades_quantity():
    orders = [resting(3, "buy", "100", "1"), resting(1, "buy", "100", "1"), resting(2, "buy", "101", "1")]
    matches = allocate(orders, trade("99", quantity="2.5"))
    assert [(m.order_id, m.quantity) for m in matches] == [(2, D("1")), (1, D("1")), (3, D("0.5"))]


def test_sells_go_lowest_price_first():
    orders = [resting(1, "sell", "102"), resting(2, "sell", "101")]
    assert [m.order_id for m in allocate(orders, trade("105", quantity="5"))] == [2, 1]


def test_orders_the_trade_does_not_reach_are_left():
    orders = [resting(1, "buy", "95"), resting(2, "sell", "105")]
    assert allocate(orders, trade("100")) == []


ASKS = [(D("100"), D("0.5")), (D("101"), D("1")), (D("102"), D("2"))]
BIDS = [(D("99"), D("1")), (D("98"), D("1"))]


def test_a_market_buy_walks_the_asks_level_by_level():
    assert walk_book("buy", ASKS, D("1.2")) == [(D("100"), D("0.5")), (D("101"), D("0.7"))]


def test_a_market_sell_walks_the_bids():
    assert walk_book("sell", BIDS, D("1.5")) == [(D("99"), D("1")), (D("98"), D("0.5"))]


def test_a_walk_stops_where_the_book_ends():
    taken = walk_book("buy", ASKS, D("10"))
    assert sum(q for _p, q in taken) == D("3.5")


def test_a_limit_stops_the_walk_at_the_first_level_beyond_it():
    assert walk_book("buy", ASKS, D("3"), limit=D("101")) == [(D("100"), D("0.5")), (D("101"), D("1"))]
    assert walk_book("sell", BIDS, D("3"), limit=D("99.5")) == []


def test_the_average_of_a_walk_is_volume_weighted():
    assert vwap([(D("100"), D("0.5")), (D("101"), D("0.7"))]) == D("100.583333333333")
    assert vwap([]) is None


def test_an_unknown_side_is_refused():
    with pytest.raises(ValueError):
        walk_book("hold", ASKS, D("1"))
    with pytest.raises(ValueError):
        crosses("hold", D("1"), D("1"))


def test_the_reach_names_the_sides_a_trade_crosses_and_none_outside_both():
    reach = Reach(highest_buy=D("100"), lowest_sell=D("110"))
    assert reach.sides(D("105")) == ()
    assert reach.sides(D("100")) == ("buy",) and reach.sides(D("99")) == ("buy",)
    assert reach.sides(D("110")) == ("sell",) and reach.sides(D("111")) == ("sell",)
    assert Reach(highest_buy=D("100"), lowest_sell=D("90")).sides(D("95")) == ("buy", "sell")
    assert Reach(highest_buy=None, lowest_sell=None).sides(D("1")) == ()
    assert Reach(highest_buy=None, lowest_sell=D("90")).sides(D("95")) == ("sell",)
