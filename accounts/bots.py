"""Bots: performance figures from a bot's fills, and the built-in DCA strategy's decision.

Pure. Performance replays the bot's own fills (its own net position, separate from the owner's
other trading): total_pnl is realised plus unrealised PnL at the last price; win_rate is the share
of closing fills (fills that reduced the bot's position) that realised a profit, in percent, 0
while none closed anything (a buy-only DCA bot); trades_today counts fills since 00:00 UTC.

DCA: while running, every `interval_seconds` buy `quote_amount` worth of the bot's symbol at market,
the quantity rounded down to the symbol's step.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from accounts.exceptions import InvalidInput
from accounts.money import ZERO, DecimalParseError, fits_column, parse_decimal, percent, plain, quantize
from accounts.money import round_down_to_step as _round_down
from accounts.portfolio import PositionState, apply_fill, unrealized_pnl

DCA = "dca"
STRATEGIES = (DCA,)
MIN_INTERVAL_SECONDS = 1
MAX_INTERVAL_SECONDS = 7 * 24 * 3600


# --- performance ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class BotFill:
    side: str
    quantity: Decimal
    price: Decimal
    executed_at: datetime


@dataclass(frozen=True)
class Performance:
    total_pnl: Decimal
    win_rate: Decimal  # percent, two places
    trades_today: int
    realized_pnl: Decimal
    unrealized_pnl: Decimal

    def as_dict(self) -> dict:
        """The `performance` object of a bot_status message."""
        return {"total_pnl": self.total_pnl, "win_rate": self.win_rate, "trades_today": self.trades_today}


def performance(fills: Iterable[BotFill], *, market_price: Decimal | None, today_start: datetime) -> Performance:
    """Figures for a bot from its fills in execution order; unrealised PnL needs a market price."""
    state = PositionState()
    closing = wins = today = 0
    for fill in fills:
        result = apply_fill(state, side=fill.side, quantity=fill.quantity, price=fill.price)
        state = result.position
        if result.reduced:
            closing += 1
            wins += result.realized > 0
        today += fill.executed_at >= today_start
    unrealized = unrealized_pnl(state, market_price) if market_price is not None and state.quantity else ZERO
    return Performance(
        total_pnl=quantize(state.realized_pnl + unrealized),
        win_rate=percent(wins, closing),
        trades_today=today,
        realized_pnl=state.realized_pnl,
        unrealized_pnl=unrealized,
    )


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
