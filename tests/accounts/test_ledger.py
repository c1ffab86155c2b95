"""Balances, reservations, fill values and fees (accounts.ledger): examples and properties."""

from decimal import Decimal as D

import pytest
from hypothesis import given
from hypothesis import strategies as st

from accounts.ledger import Funds, Shortfall, buy_cost, buy_reservation, fee_for, fill_value, settle_fill
from accounts.money import from_sortable, to_sortable

RATE = D("0.001")


def test_a_reservation_moves_free_to_locked_and_a_release_moves_it_back():
    funds = Funds("USDT", D("100")).reserve(D("30"))
    assert (funds.free, funds.locked, funds.total) == (D("70"), D("30"), D("100"))
    assert funds.release(D("30")) == Funds("USDT", D("100"), D("0"))


def test_a_reservation_beyond_the_free_balance_says_what_is_missing():
    with pytest.raises(Shortfall) as caught:
        Funds("USDT", D("100"), D("50")).reserve(D("120"))
    assert (caught.value.asset, caught.value.needed, caught.value.available, caught.value.missing) == (
        "USDT",
        D("120"),
        D("100"),
        D("20"),
    )


def test_nothing_more_than_is_locked_can_be_spent_or_released_from_it():
    with pytest.raises(ValueError):
        Funds("BTC", D("5"), D("1")).spend_locked(D("2"))
    with pytest.raises(ValueError):
        Funds("BTC", D("5"), D("1")).release(D("2"))


def test_fill_values_and_fees_are_rounded_down_and_reservations_up():
    assert fill_value(D("0.333333333333"), D("0.3")) == D("0.099999999999")
    assert fee_for(D("0.0000000019"), RATE) == D("0.000000000001")
    assert fee_for(D("0.0000000009"), RATE) == 0
    assert buy_reservation(D("0.333333333333"), D("0.3"), RATE) == D("0.1001")  # 0.1000999999998999 up
    assert buy_cost(D("1"), D("100"), RATE) == D("100.1")


def test_a_buy_fill_pays_from_its_reservation_and_receives_the_base_asset():
    settled = settle_fill(
        side="buy",
        quantity=D("0.5"),
        price=D("99"),
        rate=RATE,
        reserved=D("100.1"),
        quote=Funds("USDT", D("0"), D("100.1")),
        base=Funds("BTC"),
    )
    assert (settled.value, settled.fee, settled.reserved_left) == (D("49.5"), D("0.0495"), D("50.5505"))
    assert settled.quote == Funds("USDT", D("0"), D("50.5505")) and settled.base == Funds("BTC", D("0.5"))


def test_a_sell_fill_pays_the_base_and_receives_the_value_less_the_fee():
    settled = settle_fill(
        side="sell",
        quantity=D("1"),
        price=D("100"),
        rate=RATE,
        reserved=D("0"),
        quote=Funds("USDT"),
        base=Funds("BTC", D("2")),
    )
    assert settled.quote == Funds("USDT", D("99.9")) and settled.base == Funds("BTC", D("1"))


def test_a_fill_the_user_cannot_pay_is_a_shortfall():
    with pytest.raises(Shortfall):
        settle_fill(
            side="buy",
            quantity=D("1"),
            price=D("100"),
            rate=RATE,
            reserved=D("0"),
            quote=Funds("USDT", D("100")),
            base=Funds("BTC"),
        )


steps = st.integers(min_value=1, max_value=10**6).map(lambda n: D(n) / D(10**6))
prices = st.integers(min_value=1, max_value=10**8).map(lambda n: D(n) / D(100))
rates = st.sampled_from([D("0"), D("0.00075"), D("0.001"), D("0.002")])


@given(
    quantity=steps,
    limit=prices,
    rate=rates,
    cuts=st.lists(st.integers(min_value=1, max_value=10**6), max_size=6),
    discounts=st.lists(st.integers(min_value=0, max_value=10**6), min_size=7, max_size=7),
)
def test_a_buy_reservation_covers_any_fills_at_or_under_the_limit(quantity, limit, rate, cuts, discounts):
    """Whatever the split of the quantity and the prices at or under the limit, the fills' cost
    never exceeds the reservation, so a resting buy never takes from the free balance."""
    reserved = buy_reservation(quantity, limit, rate)
    points = sorted({quantity * cut / 10**6 for cut in cuts if cut < 10**6} | {quantity})
    parts = [b - a for a, b in zip([D(0), *points], points, strict=False)]
    spent = D(0)
    for part, discount in zip(parts, discounts, strict=False):
        price = max(D("0.01"), (limit * (10**6 - discount) / 10**6).quantize(D("0.01")))
        spent += buy_cost(part, min(price, limit), rate)
    assert sum(parts) == quantity and spent <= reserved


amounts = st.decimals(
    min_value=D("-999999999999999999.999999999999"), max_value=D("999999999999999999.999999999999"), places=12
)


@given(amounts, amounts)
def test_stored_text_sorts_like_the_numbers_and_reads_back_exactly(a, b):
    assert from_sortable(to_sortable(a)) == a
    assert (to_sortable(a) < to_sortable(b)) == (a < b)
    assert (to_sortable(a) == to_sortable(b)) == (a == b)


def test_amounts_too_large_for_the_column_are_refused():
    with pytest.raises(ValueError):
        to_sortable(D("1e18"))
