"""Position and portfolio arithmetic: average entry price, realised and unrealised PnL, valuation.

Pure, all in Decimal. A position's quantity is signed (negative = short). Fills that add to a
position move its average entry price; fills that reduce it realise PnL against that average and
leave it unchanged; a fill that goes through zero closes the old position and opens the rest at the
fill price. Cash is a paper balance in the quote asset (USDT): a buy spends quantity x price, a sell
receives it; there are no fees and no buying-power check (paper margin), risk limits are the guard.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.money import ZERO, quantize

BUY = "buy"
SELL = "sell"
STARTING_CASH = Decimal("100000")
CASH_CURRENCY = "USDT"


@dataclass(frozen=True)
class PositionState:
    quantity: Decimal = ZERO  # signed: negative is short
    average_price: Decimal = ZERO  # average entry price of the open quantity; 0 when flat
    realized_pnl: Decimal = ZERO


@dataclass(frozen=True)
class FillResult:
    position: PositionState
    realized: Decimal  # PnL realised by this fill alone
    cash_delta: Decimal  # what the fill does to the cash balance
    reduced: bool  # whether the fill closed (part of) an existing position


def signed(side: str, quantity: Decimal) -> Decimal:
    if side == BUY:
        return quantity
    if side == SELL:
        return -quantity
    raise ValueError(f"side must be buy or sell, not {side!r}")


def apply_fill(state: PositionState, *, side: str, quantity: Decimal, price: Decimal) -> FillResult:
    """The position after one fill, and what the fill realised."""
    if quantity <= 0 or price <= 0:
        raise ValueError("a fill needs a positive quantity and price")
    delta = signed(side, quantity)
    old = state.quantity
    new = old + delta
    cash_delta = quantize(-delta * price)
    if old == 0 or (old > 0) == (delta > 0):
        average = quantize((abs(old) * state.average_price + quantity * price) / abs(new))
        position = PositionState(new, average, state.realized_pnl)
        return FillResult(position, ZERO, cash_delta, reduced=False)
    closed = min(quantity, abs(old))
    direction = 1 if old > 0 else -1
    realized = quantize(closed * (price - state.average_price) * direction)
    if new == 0:
        average = ZERO
    elif (new > 0) == (old > 0):
        average = state.average_price  # reducing never moves the entry price
    else:
        average = price  # flipped: the remainder is a new position opened at this fill
    position = PositionState(new, average, quantize(state.realized_pnl + realized))
    return FillResult(position, realized, cash_delta, reduced=True)


def unrealized_pnl(state: PositionState, market_price: Decimal) -> Decimal:
    return quantize(state.quantity * (market_price - state.average_price))


def market_value(quantity: Decimal, market_price: Decimal) -> Decimal:
    return quantize(quantity * market_price)


def notional(quantity: Decimal, market_price: Decimal) -> Decimal:
    """The size of a position in quote currency, whichever its direction."""
    return quantize(abs(quantity) * market_price)


@dataclass(frozen=True)
class PositionValue:
    symbol: str
    quantity: Decimal
    average_price: Decimal
    market_price: Decimal | None  # None: no price known yet; valued at its entry price meanwhile
    market_value: Decimal
    unrealized_pnl: Decimal
    realized_pnl: Decimal

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "quantity": self.quantity,
            "average_price": self.average_price,
            "market_price": self.market_price,
            "market_value": self.market_value,
            "unrealized_pnl": self.unrealized_pnl,
            "realized_pnl": self.realized_pnl,
        }


@dataclass(frozen=True)
class Valuation:
    cash: Decimal
    total_value: Decimal  # cash + market value of every open position
    unrealized_pnl: Decimal
    realized_pnl: Decimal  # over all positions, closed ones included
    positions: list[PositionValue] = field(default_factory=list)
    currency: str = CASH_CURRENCY


def value_position(symbol: str, state: PositionState, market_price: Decimal | None) -> PositionValue:
    price = state.average_price if market_price is None else market_price
    return PositionValue(
        symbol=symbol,
        quantity=state.quantity,
        average_price=state.average_price,
        market_price=market_price,
        market_value=market_value(state.quantity, price),
        unrealized_pnl=unrealized_pnl(state, price),
        realized_pnl=state.realized_pnl,
    )


def value_portfolio(
    cash: Decimal, positions: Iterable[tuple[str, PositionState]], prices: Mapping[str, Decimal | None]
) -> Valuation:
    """Cash plus every position at its market price (at its entry price while none is known)."""
    states = list(positions)
    valued = [value_position(symbol, state, prices.get(symbol)) for symbol, state in states if state.quantity != 0]
    return Valuation(
        cash=cash,
        total_value=quantize(cash + sum((p.market_value for p in valued), ZERO)),
        unrealized_pnl=quantize(sum((p.unrealized_pnl for p in valued), ZERO)),
        realized_pnl=quantize(sum((state.realized_pnl for _symbol, state in states), ZERO)),
        positions=valued,
    )
