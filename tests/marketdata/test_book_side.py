"""A book side keeps its prices in order: the best levels are the same as sorting the whole side."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from marketdata.book_side import BookSide


def side_of(levels: list[tuple[str, str]], *, highest_first: bool) -> BookSide:
    side = BookSide(highest_first=highest_first)
    for price, quantity in levels:
        side.set(Decimal(price), (price, quantity))
    return side


def test_bids_are_best_highest_first():
    side = side_of([("99.5", "2"), ("100.0", "1"), ("99.0", "3")], highest_first=True)

    assert side.best() == Decimal("100.0")
    assert side.best_levels(2) == [("100.0", "1"), ("99.5", "2")]


def test_asks_are_best_lowest_first():
    side = side_of([("101.0", "2"), ("100.5", "1"), ("101.5", "3")], highest_first=False)

    assert side.best() == Decimal("100.5")
    assert side.best_levels(5) == [("100.5", "1"), ("101.0", "2"), ("101.5", "3")]


def test_a_price_written_differently_is_the_same_level_and_keeps_the_newest_strings():
    side = side_of([("0.10", "1"), ("0.1", "2")], highest_first=False)

    assert len(side) == 1
    assert side.best_levels(5) == [("0.1", "2")]


def test_removing_an_absent_level_changes_nothing():
    side = side_of([("1.5", "1")], highest_first=True)

    side.remove(Decimal("2"))

    assert side.best_levels(5) == [("1.5", "1")]


def test_an_empty_side_has_no_best():
    side = BookSide(highest_first=True)

    assert side.best() is None
    assert side.best_levels(10) == []


prices = st.decimals(min_value="0.00000001", max_value="100000", places=8, allow_nan=False, allow_infinity=False)
# (price, quantity or None for a removal)
changes = st.lists(st.tuples(prices, st.one_of(st.none(), st.integers(min_value=1, max_value=10**6))), max_size=80)


@given(changes=changes, highest_first=st.booleans(), depth=st.integers(min_value=0, max_value=30))
def test_the_best_levels_are_those_of_sorting_the_whole_side(changes, highest_first, depth):
    side, model = BookSide(highest_first=highest_first), {}
    for price, quantity in changes:
        if quantity is None:
            side.remove(price)
            model.pop(price, None)
        else:
            level = (f"{price:f}", str(quantity))
            side.set(price, level)
            model[price] = level

    ordered = sorted(model, reverse=highest_first)
    assert side.best_levels(depth) == [model[p] for p in ordered[:depth]]
    assert side.best() == (ordered[0] if ordered else None)
    assert len(side) == len(model)
