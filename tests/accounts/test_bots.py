from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D

import pytest

from accounts.bots import (
    Action,
    BotFill,
    DcaParams,
    PerformanceState,
    dca_decision,
    dca_params,
    grid_counter,
    grid_ladder,
    grid_opening,
    grid_params,
    performance,
    performance_apply,
    performance_report,
)
from accounts.exceptions import InvalidInput

NOON = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
MIDNIGHT = datetime(2026, 3, 1, tzinfo=UTC)
PARAMS = DcaParams(quote_amount=D("100"), interval_seconds=10)


def fill(side: str, quantity: str, price: str, at: datetime = NOON) -> BotFill:
    return BotFill(side=side, quantity=D(quantity), price=D(price), executed_at=at)


def test_a_bot_without_fills_has_zero_performance():
    figures = performance([], market_price=D("100"), today_start=MIDNIGHT)
    assert (figures.total_pnl, figures.win_rate, figures.trades_today) == (0, 0, 0)


def test_total_pnl_is_realised_plus_unrealised_at_the_market_price():
    history = [fill("buy", "2", "100"), fill("sell", "1", "130")]
    figures = performance(history, market_price=D("110"), today_start=MIDNIGHT)
    assert figures.realized_pnl == D("30")
    assert figures.unrealized_pnl == D("10")
    assert figures.total_pnl == D("40")


def test_without_a_market_price_total_pnl_is_the_realised_part():
    figures = performance([fill("buy", "2", "100"), fill("sell", "1", "90")], market_price=None, today_start=MIDNIGHT)
    assert figures.total_pnl == D("-10")


def test_win_rate_is_the_share_of_closing_fills_that_made_money():
    history = [fill("buy", "3", "100"), fill("sell", "1", "110"), fill("sell", "1", "90"), fill("sell", "1", "120")]
    assert performance(history, market_price=None, today_start=MIDNIGHT).win_rate == D("66.67")


def test_a_buy_only_bot_has_no_closed_trades_and_a_zero_win_rate():
    history = [fill("buy", "1", "100"), fill("buy", "1", "90")]
    assert performance(history, market_price=D("200"), today_start=MIDNIGHT).win_rate == 0


def test_trades_today_counts_only_fills_since_midnight():
    history = [
        fill("buy", "1", "100", at=MIDNIGHT - timedelta(seconds=1)),
        fill("buy", "1", "100"),
        fill("buy", "1", "100"),
    ]
    assert performance(history, market_price=None, today_start=MIDNIGHT).trades_today == 2


def test_dca_params_are_parsed_from_strings_and_whole_seconds():
    assert dca_params({"quote_amount": "100", "interval_seconds": 10}) == PARAMS
    assert PARAMS.as_json() == {"quote_amount": "100", "interval_seconds": 10}


@pytest.mark.parametrize(
    "raw",
    [
        None,
        {"quote_amount": 100.5, "interval_seconds": 10},
        {"quote_amount": "0", "interval_seconds": 10},
        {"quote_amount": "100", "interval_seconds": 0},
        {"quote_amount": "100", "interval_seconds": "10"},
        {"quote_amount": "100"},
        {"quote_amount": "100", "interval_seconds": 10, "take_profit": "1"},
    ],
)
def test_bad_dca_params_are_refused_with_the_params_field_named(raw):
    with pytest.raises(InvalidInput) as caught:
        dca_params(raw)
    assert caught.value.field == "params"


def decide(*, last_run_at=None, price="50000", step="0.0001"):
    return dca_decision(
        params=PARAMS,
        symbol="BTCUSDT",
        last_run_at=last_run_at,
        now=NOON,
        price=None if price is None else D(price),
        step_size=D(step),
    )


def test_dca_buys_the_quote_amount_rounded_down_to_the_step():
    decision = decide(price="30000")
    assert decision.action == Action.BUY
    assert decision.quantity == D("0.0033")  # 100 / 30000 = 0.00333...


def test_dca_waits_until_its_interval_has_elapsed():
    assert decide(last_run_at=NOON - timedelta(seconds=9)).action == Action.WAIT
    assert decide(last_run_at=NOON - timedelta(seconds=10)).action == Action.BUY


def test_dca_waits_while_no_price_is_known():
    decision = decide(price=None)
    assert decision.action == Action.WAIT and "no market price" in decision.reason


def test_dca_fails_when_the_amount_buys_less_than_one_step():
    decision = decide(price="50000", step="0.01")
    assert decision.action == Action.FAIL and "raise quote_amount" in decision.reason


# --- performance kept per fill, and the grid ---------------------------------------------------


def test_performance_kept_fill_by_fill_counts_fees_and_resets_trades_today_each_day():

    monday, tuesday = datetime(2026, 1, 5, 10, tzinfo=UTC), datetime(2026, 1, 6, 9, tzinfo=UTC)
    state = PerformanceState()
    for fill in (
        BotFill("buy", D("1"), D("100"), monday, fee=D("0.1")),
        BotFill("sell", D("1"), D("110"), tuesday, fee=D("0.11")),
    ):
        state = performance_apply(state, fill)
    report = performance_report(state, market_price=D("120"), today=date(2026, 1, 6))
    assert (report.total_pnl, report.fees, report.win_rate, report.trades_today) == (D("9.79"), D("0.21"), 100, 1)
    assert performance_report(state, market_price=None, today=date(2026, 1, 7)).trades_today == 0


GRID = {"lower": "90", "upper": "110", "levels": 5, "quantity_per_level": "0.5"}


def test_a_grid_ladder_spaces_its_levels_evenly_on_the_tick():

    assert grid_ladder(grid_params(GRID), D("0.01")) == [D("90"), D("95"), D("100"), D("105"), D("110")]
    assert grid_ladder(grid_params({**GRID, "levels": 3, "upper": "90.05"}), D("0.01")) == [
        D("90"),
        D("90.02"),
        D("90.05"),
    ]


def test_a_grid_opens_with_buys_below_the_market_and_sells_above():

    ladder = [D("90"), D("95"), D("100"), D("105"), D("110")]
    assert grid_opening(ladder, D("100")) == [
        ("buy", D("95")),
        ("buy", D("90")),
        ("sell", D("105")),
        ("sell", D("110")),
    ]


def test_a_filled_grid_order_is_replaced_one_level_away_on_the_other_side():

    ladder = [D("90"), D("95"), D("100")]
    assert grid_counter(ladder, "buy", D("95")) == ("sell", D("100"))
    assert grid_counter(ladder, "sell", D("95")) == ("buy", D("90"))
    assert grid_counter(ladder, "buy", D("100")) is None and grid_counter(ladder, "sell", D("90")) is None
    assert grid_counter(ladder, "buy", D("97")) is None


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({**GRID, "lower": "110"}, "lower must be below upper"),
        ({**GRID, "levels": 1}, "levels must be"),
        ({**GRID, "levels": 101}, "levels must be"),
        ({**GRID, "levels": "5"}, "levels must be"),
        ({**GRID, "quantity_per_level": 0.5}, "quantity_per_level"),
        ({**GRID, "step": "1"}, "unknown grid parameter"),
        ([], "params must be an object"),
    ],
)
def test_bad_grid_params_are_refused_saying_what_to_fix(params, fragment):

    with pytest.raises(InvalidInput, match=fragment):
        grid_params(params)


def test_grid_levels_closer_than_a_tick_are_refused():

    with pytest.raises(InvalidInput, match="at least one tick"):
        grid_ladder(grid_params({**GRID, "upper": "90.02", "levels": 5}), D("0.01"))
