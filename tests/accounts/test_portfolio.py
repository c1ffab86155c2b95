from decimal import Decimal as D

import pytest

from accounts.portfolio import PositionState, apply_fill, notional, unrealized_pnl, value_portfolio


def fills(*steps: tuple[str, str, str]) -> PositionState:
    state = PositionState()
    for side, quantity, price in steps:
        state = apply_fill(state, side=side, quantity=D(quantity), price=D(price)).position
    return state


def test_buys_average_their_entry_price_by_quantity():
    state = fills(("buy", "1", "100"), ("buy", "3", "200"))
    assert state.quantity == D("4")
    assert state.average_price == D("175")
    assert state.realized_pnl == 0


def test_a_partial_sell_realises_pnl_and_keeps_the_entry_price():
    state = fills(("buy", "2", "100"), ("sell", "0.5", "120"))
    assert state.quantity == D("1.5")
    assert state.average_price == D("100")
    assert state.realized_pnl == D("10")


def test_closing_a_position_flattens_it():
    state = fills(("buy", "2", "100"), ("sell", "2", "90"))
    assert state == PositionState(D("0"), D("0"), D("-20"))


def test_a_sell_through_zero_closes_the_long_and_opens_a_short_at_the_fill_price():
    state = fills(("buy", "1", "100"), ("sell", "3", "110"))
    assert state.quantity == D("-2")
    assert state.average_price == D("110")
    assert state.realized_pnl == D("10")


def test_a_short_profits_when_bought_back_lower():
    state = fills(("sell", "2", "50"), ("buy", "1", "40"))
    assert state.quantity == D("-1")
    assert state.average_price == D("50")
    assert state.realized_pnl == D("10")
    assert unrealized_pnl(state, D("45")) == D("5")


def test_a_fill_reports_its_cash_movement_and_whether_it_reduced_the_position():
    bought = apply_fill(PositionState(), side="buy", quantity=D("0.5"), price=D("50000"))
    assert bought.cash_delta == D("-25000") and not bought.reduced
    sold = apply_fill(bought.position, side="sell", quantity=D("0.5"), price=D("51000"))
    assert sold.cash_delta == D("25500") and sold.reduced and sold.realized == D("500")


def test_an_average_with_a_repeating_fraction_is_rounded_to_twelve_places():
    state = fills(("buy", "1", "1"), ("buy", "2", "2"))
    assert state.average_price == D("1.666666666667")


def test_fees_are_kept_apart_from_the_cost_and_taken_off_the_realised_pnl():
    bought = apply_fill(PositionState(), side="buy", quantity=D("1"), price=D("100"), fee=D("0.1"))
    assert bought.cash_delta == D("-100.1") and bought.position.cost == D("100")
    sold = apply_fill(bought.position, side="sell", quantity=D("1"), price=D("110"), fee=D("0.11"))
    assert sold.cash_delta == D("109.89") and sold.realized == D("10")
    assert sold.position.fees == D("0.21") and sold.position.net_realized_pnl == D("9.79")


def test_notional_ignores_the_direction_of_the_position():
    assert notional(D("-2"), D("100")) == D("200")


@pytest.mark.parametrize(("quantity", "price"), [("0", "1"), ("1", "0"), ("-1", "1")])
def test_a_fill_needs_a_positive_quantity_and_price(quantity, price):
    with pytest.raises(ValueError):
        apply_fill(PositionState(), side="buy", quantity=D(quantity), price=D(price))


def test_a_portfolio_is_cash_plus_positions_at_market_and_at_entry_while_no_price_is_known():
    btc = PositionState(D("0.5"), D("20000"), D("100"))  # cost 20000: 0.5 at 40000
    eth = PositionState(D("-2"), D("-4000"), D("0"))
    flat = PositionState(D("0"), D("0"), D("-30"))
    valuation = value_portfolio(
        D("90000"), [("BTCUSDT", btc), ("ETHUSDT", eth), ("ADAUSDT", flat)], {"BTCUSDT": D("50000")}
    )
    assert [p.symbol for p in valuation.positions] == ["BTCUSDT", "ETHUSDT"]
    btc_value, eth_value = valuation.positions
    assert (btc_value.market_value, btc_value.unrealized_pnl) == (D("25000"), D("5000"))
    assert eth_value.market_price is None and eth_value.market_value == D("-4000") and eth_value.unrealized_pnl == 0
    assert valuation.total_value == D("111000")
    assert valuation.unrealized_pnl == D("5000")
    assert valuation.realized_pnl == D("70")
