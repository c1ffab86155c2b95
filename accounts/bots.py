"""Bots: performance figures from a bot's fills, and the built-in strategies (DCA and grid).

Pure. Performance follows the bot's own fills (its own net position, separate from the owner's
other trading), one fill at a time: the state is kept on the bot and updated by each fill, so a
report never replays the history. total_pnl is realised plus unrealised PnL at the last price, net
of fees; win_rate is the share of closing fills (fills that reduced the bot's position) that
realised a profit, in percent, 0 while none closed anything (a buy-only DCA bot); trades_today
counts fills since 00:00 UTC.

DCA: while running, every `interval_seconds` buy `quote_amount` worth of the bot's symbol at market,
the quantity rounded down to the symbol's step.

Grid: `levels` prices evenly spaced from `lower` to `upper` (on the symbol's tick). Started, it
places a limit buy of `quantity_per_level` at every level below the market and a limit sell at
every level above it (as far as the base balance allows); each time one of its orders fills, it
places the opposite order one level away (a filled buy becomes a sell one level up, a filled sell a
buy one level down), so the ladder keeps buying low and selling high inside the range.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from accounts.exceptions import InvalidInput
from accounts.money import ZERO, DecimalParseError, fits_column, parse_decimal, percent, plain, quantize, wide
from accounts.money import round_down_to_step as _round_down
from accounts.portfolio import PositionState, apply_fill, unrealized_pnl

DCA = "dca"
GRID = "grid"
STRATEGIES = (DCA, GRID)
MIN_GRID_LEVELS = 2
MAX_GRID_LEVELS = 100
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 7 * 24 * 3600


# --- performance ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BotFill:
    side: str
    quantity: Decimal
    price: Decimal
    executed_at: datetime
    fee: Decimal = ZERO


@dataclass(frozen=True)
class PerformanceState:
    """What a bot keeps (on its row) to report its performance without replaying its fills."""

    position: PositionState = field(default_factory=PositionState)
    closing_fills: int = 0
    winning_fills: int = 0
    fills_day: date | None = None  # the UTC day fills_today counts
    fills_today: int = 0


@dataclass(frozen=True)
class Performance:
    total_pnl: Decimal
    win_rate: Decimal  # percent, two places
    trades_today: int
    realized_pnl: Decimal
    unrealized_pnl: Decimal
    fees: Decimal = ZERO

    def as_dict(self) -> dict:
        """The `performance` object of a bot_status message."""
        return {
            "total_pnl": self.total_pnl,
            "win_rate": self.win_rate,
            "trades_today": self.trades_today,
            "realized_pnl": self.realized_pnl,
            "unrealized_pnl": self.unrealized_pnl,
            "fees": self.fees,
        }


def performance_apply(state: PerformanceState, fill: BotFill) -> PerformanceState:
    """The state after one more fill of the bot (fills arrive in execution order)."""
    result = apply_fill(state.position, side=fill.side, quantity=fill.quantity, price=fill.price, fee=fill.fee)
    day = fill.executed_at.date()
    today = state.fills_today + 1 if state.fills_day == day else 1
    return PerformanceState(
        position=result.position,
        closing_fills=state.closing_fills + result.reduced,
        winning_fills=state.winning_fills + (result.reduced and result.realized > 0),
        fills_day=day,
        fills_today=today,
    )


@wide
def performance_report(state: PerformanceState, *, market_price: Decimal | None, today: date) -> Performance:
    """Figures for a bot: PnL net of fees (unrealised at the last price), win rate, fills today."""
    position = state.position
    unrealized = unrealized_pnl(position, market_price) if market_price is not None and position.quantity else ZERO
    return Performance(
        total_pnl=quantize(position.net_realized_pnl + unrealized),
        win_rate=percent(state.winning_fills, state.closing_fills),
        trades_today=state.fills_today if state.fills_day == today else 0,
        realized_pnl=position.net_realized_pnl,
        unrealized_pnl=unrealized,
        fees=position.fees,
    )


def performance(fills: Iterable[BotFill], *, market_price: Decimal | None, today_start: datetime) -> Performance:
    """Figures for a bot from all its fills in execution order (the reference the stored state must equal)."""
    state = PerformanceState()
    for fill in fills:
        state = performance_apply(state, fill)
    return performance_report(state, market_price=market_price, today=today_start.date())


def start_of_day(moment: datetime) -> datetime:
    """00:00 of the moment's day in its own time zone (the caller passes UTC)."""
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


# --- DCA -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DcaParams:
    quote_amount: Decimal
    interval_seconds: int

    def as_json(self) -> dict:
        """As stored in Bot.params: decimals as strings, so JSON never carries a float."""
        return {"quote_amount": plain(self.quote_amount), "interval_seconds": self.interval_seconds}


def params_for(strategy: str, raw: Mapping | None) -> DcaParams | GridParams:
    """Validated parameters of a strategy, or InvalidInput saying what to fix."""
    if strategy == GRID:
        return grid_params(raw)
    if strategy == DCA:
        return dca_params(raw)
    raise InvalidInput(f"unknown strategy {strategy!r}; available: {', '.join(STRATEGIES)}", field="strategy")


def dca_params(raw: Mapping | None) -> DcaParams:
    """Validated DCA parameters from a bot's params, or InvalidInput saying what to fix."""
    if not isinstance(raw, Mapping):
        raise InvalidInput(
            'params must be an object such as {"quote_amount": "100", "interval_seconds": 10}', field="params"
        )
    unknown = sorted(set(raw) - {"quote_amount", "interval_seconds"})
    if unknown:
        raise InvalidInput(
            f"unknown DCA parameter(s): {', '.join(unknown)}; allowed: quote_amount, interval_seconds",
            field="params",
        )
    try:
        amount = parse_decimal(raw.get("quote_amount"))
    except DecimalParseError as exc:
        raise InvalidInput(f"quote_amount: {exc}", field="params") from None
    if amount <= 0 or not fits_column(amount):
        raise InvalidInput('quote_amount must be a positive amount of the quote currency, e.g. "100"', field="params")
    interval = raw.get("interval_seconds")
    if isinstance(interval, bool) or not isinstance(interval, int):
        raise InvalidInput("interval_seconds must be a whole number of seconds, e.g. 10", field="params")
    if not MIN_INTERVAL_SECONDS <= interval <= MAX_INTERVAL_SECONDS:
        raise InvalidInput(
            f"interval_seconds must be between {MIN_INTERVAL_SECONDS} and {MAX_INTERVAL_SECONDS}", field="params"
        )
    return DcaParams(quote_amount=amount, interval_seconds=interval)


class Action(StrEnum):
    WAIT = "wait"  # not due, or no price yet: try again later
    BUY = "buy"  # place a market buy of `quantity`
    FAIL = "fail"  # cannot ever work as configured: the bot goes to error with `reason`


@dataclass(frozen=True)
class DcaDecision:
    action: Action
    quantity: Decimal = ZERO
    reason: str = ""


def dca_due(*, params: DcaParams, last_run_at: datetime | None, now: datetime) -> bool:
    return last_run_at is None or now - last_run_at >= timedelta(seconds=params.interval_seconds)


def dca_decision(
    *,
    params: DcaParams,
    symbol: str,
    last_run_at: datetime | None,
    now: datetime,
    price: Decimal | None,
    step_size: Decimal,
) -> DcaDecision:
    """Whether a running DCA bot buys now, and how much: quote_amount / price, rounded down to the step."""
    if not dca_due(params=params, last_run_at=last_run_at, now=now):
        return DcaDecision(Action.WAIT, reason="not due yet")
    if price is None or price <= 0:
        return DcaDecision(Action.WAIT, reason=f"no market price known yet for {symbol}")
    quantity = _round_down(params.quote_amount / price, step_size)
    if quantity <= 0:
        return DcaDecision(
            Action.FAIL,
            reason=(
                f"quote_amount {plain(params.quote_amount)} buys less than one step ({plain(step_size)}) of "
                f"{symbol} at {plain(price)}; raise quote_amount"
            ),
        )
    return DcaDecision(Action.BUY, quantity=quantity)


# --- grid ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class GridParams:
    lower: Decimal
    upper: Decimal
    levels: int
    quantity_per_level: Decimal

    def as_json(self) -> dict:
        return {
            "lower": plain(self.lower),
            "upper": plain(self.upper),
            "levels": self.levels,
            "quantity_per_level": plain(self.quantity_per_level),
        }


_GRID_EXAMPLE = '{"lower": "45000", "upper": "55000", "levels": 11, "quantity_per_level": "0.001"}'


def _grid_amount(raw: Mapping, name: str) -> Decimal:
    try:
        value = parse_decimal(raw.get(name))
    except DecimalParseError as exc:
        raise InvalidInput(f"{name}: {exc}", field="params") from None
    if value <= 0 or not fits_column(value):
        raise InvalidInput(f"{name} must be a positive decimal string, e.g. {_GRID_EXAMPLE}", field="params")
    return value


def grid_params(raw: Mapping | None) -> GridParams:
    """Validated grid parameters from a bot's params, or InvalidInput saying what to fix."""
    if not isinstance(raw, Mapping):
        raise InvalidInput(f"params must be an object such as {_GRID_EXAMPLE}", field="params")
    allowed = {"lower", "upper", "levels", "quantity_per_level"}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise InvalidInput(
            f"unknown grid parameter(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}", field="params"
        )
    lower, upper = _grid_amount(raw, "lower"), _grid_amount(raw, "upper")
    if lower >= upper:
        raise InvalidInput("lower must be below upper", field="params")
    levels = raw.get("levels")
    if isinstance(levels, bool) or not isinstance(levels, int) or not MIN_GRID_LEVELS <= levels <= MAX_GRID_LEVELS:
        raise InvalidInput(
            f"levels must be a whole number from {MIN_GRID_LEVELS} to {MAX_GRID_LEVELS}, e.g. 11", field="params"
        )
    return GridParams(lower, upper, levels, _grid_amount(raw, "quantity_per_level"))


def grid_ladder(params: GridParams, tick_size: Decimal) -> list[Decimal]:
    """The grid's prices, lowest first, each rounded down to the tick; InvalidInput if two coincide."""
    span = params.upper - params.lower
    prices = [_round_down(params.lower + span * i / (params.levels - 1), tick_size) for i in range(params.levels)]
    if prices[0] <= 0 or len(set(prices)) != len(prices):
        raise InvalidInput(
            f"the grid's levels must be at least one tick ({plain(tick_size)}) apart and above 0; "
            f"use fewer levels or a wider range",
            field="params",
        )
    return prices


def grid_opening(ladder: list[Decimal], price: Decimal) -> list[tuple[str, Decimal]]:
    """The orders a grid starts with at the market price: buys below it (nearest first), sells above."""
    buys = [("buy", level) for level in reversed(ladder) if level < price]
    sells = [("sell", level) for level in ladder if level > price]
    return buys + sells


def grid_counter(ladder: list[Decimal], side: str, price: Decimal) -> tuple[str, Decimal] | None:
    """The order that replaces a filled grid order: the other side, one level away; None at an edge."""
    if price not in ladder:
        return None
    index = ladder.index(price)
    if side == "buy":
        return ("sell", ladder[index + 1]) if index + 1 < len(ladder) else None
    if side == "sell":
        return ("buy", ladder[index - 1]) if index > 0 else None
    raise ValueError(f"side must be buy or sell, not {side!r}")
