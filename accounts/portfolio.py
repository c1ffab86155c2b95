"""Position and portfolio arithmetic: average entry price, realised and unrealised PnL, valuation.

Pure, all in Decimal. A position's quantity is signed (negative = short). Fills that add to a
position move its average entry price; fills that reduce it realise PnL against that average and
leave it unchanged; a fill that goes through zero closes the old position and opens the rest at the
fill price. A position keeps its cost (not only its average price), so that
cash + cost + fees - realised PnL is conserved exactly by every fill (tests/accounts check it).
Cash is the quote asset (USDT) balance, free and locked; buying power is checked by accounts.ledger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from accounts.ledger import fill_value
from accounts.money import ZERO, quantize, wide
from realtime.protocol import Side

BUY, SELL = Side.BUY.value, Side.SELL.value  # the wire contract's words (realtime.protocol)
STARTING_CASH = Decimal("100000")
CASH_CURRENCY = "USDT"


@dataclass(frozen=True)
class PositionState:
    quantity: Decimal = ZERO  # signed: negative is short
    cost: Decimal = ZERO  # what the open quantity cost, signed like it (fees apart); 0 when flat
    realized_pnl: Decimal = ZERO  # gross: before fees
    fees: Decimal = ZERO  # fees paid on this symbol's fills

    @property
    @wide
    def average_price(self) -> Decimal:
        """Average entry price of the open quantity; 0 when flat."""
        return ZERO if self.quantity == 0 else quantize(self.cost / self.quantity)

    @property
    @wide
    def net_realized_pnl(self) -> Decimal:
        return self.realized_pnl - self.fees


@dataclass(frozen=True)
class FillResult:
    position: PositionState
    realized: Decimal  # gross PnL realised by this fill alone
    cash_delta: Decimal  # what the fill does to the quote balance, fee included
    reduced: bool  # whether the fill closed (part of) an existing position


def signed(side: str, quantity: Decimal) -> Decimal:
    if side == BUY:
        return quantity
    if side == SELL:
        return -quantity
    raise ValueError(f"side must be buy or sell, not {side!r}")


@wide
def apply_fill(
    state: PositionState, *, side: str, quantity: Decimal, price: Decimal, fee: Decimal = ZERO
) -> FillResult:
    """The position after one fill, and what the fill realised.

    The fill's value is rounded down (as the ledger books it); cost moves by exactly the value
    booked, so cash + cost + fees - realised PnL never changes.
    """
    if quantity <= 0 or price <= 0:
        raise ValueError("a fill needs a positive quantity and price")
    if fee < 0:
        raise ValueError("a fee is never negative")
    value = fill_value(quantity, price)
    delta = signed(side, quantity)
    old = state.quantity
    new = old + delta
    cash_delta = -signed(side, value) - fee
    fees = state.fees + fee
    if old == 0 or (old > 0) == (delta > 0):
        position = PositionState(new, state.cost + signed(side, value), state.realized_pnl, fees)
        return FillResult(position, ZERO, cash_delta, reduced=False)
    closed = min(quantity, abs(old))
    closed_value = value if closed == quantity else fill_value(closed, price)
    cost_closed = state.cost if closed == abs(old) else quantize(state.cost * closed / abs(old))
    # A long sells (receives closed_value for cost_closed); a short buys back (pays for -cost_closed).
    realized = closed_value - cost_closed if old > 0 else -cost_closed - closed_value
    rest_cost = signed(side, value - closed_value)  # flipped: the remainder opens at this fill
    position = PositionState(new, state.cost - cost_closed + rest_cost, state.realized_pnl + realized, fees)
    return FillResult(position, realized, cash_delta, reduced=True)


@wide
def unrealized_pnl(state: PositionState, market_price: Decimal) -> Decimal:
    return quantize(state.quantity * market_price - state.cost)


@wide
def market_value(quantity: Decimal, market_price: Decimal) -> Decimal:
    return quantize(quantity * market_price)


@wide
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
    realized_pnl: Decimal  # net of the fees paid on the symbol
    fees: Decimal

    def as_dict(self) -> dict:
        return {
            "symbol": self.symbol,
            "quantity": self.quantity,
            "average_price": self.average_price,
            "market_price": self.market_price,
            "market_value": self.market_value,
            "unrealized_pnl": self.unrealized_pnl,
            "realized_pnl": self.realized_pnl,
            "fees": self.fees,
        }


@dataclass(frozen=True)
class BalanceValue:
    asset: str
    free: Decimal
    locked: Decimal

    def as_dict(self) -> dict:
        return {"asset": self.asset, "free": self.free, "locked": self.locked}


@dataclass(frozen=True)
class Valuation:
    cash: Decimal  # the quote asset held, free and locked
    total_value: Decimal  # cash + market value of every open position
    unrealized_pnl: Decimal
    realized_pnl: Decimal  # over all positions, closed ones included, net of fees
    fees: Decimal = ZERO  # every fee paid
    positions: list[PositionValue] = field(default_factory=list)
    balances: list[BalanceValue] = field(default_factory=list)
    currency: str = CASH_CURRENCY


@wide
def value_position(symbol: str, state: PositionState, market_price: Decimal | None) -> PositionValue:
    price = state.average_price if market_price is None else market_price
    return PositionValue(
        symbol=symbol,
        quantity=state.quantity,
        average_price=state.average_price,
        market_price=market_price,
        market_value=market_value(state.quantity, price),
        unrealized_pnl=unrealized_pnl(state, price) if market_price is not None else ZERO,
        realized_pnl=state.net_realized_pnl,
        fees=state.fees,
    )


@wide
def value_portfolio(
    cash: Decimal,
    positions: Iterable[tuple[str, PositionState]],
    prices: Mapping[str, Decimal | None],
    balances: Iterable[BalanceValue] = (),
) -> Valuation:
    """Cash plus every position at its market price (at its entry price while none is known)."""
    states = list(positions)
    valued = [value_position(symbol, state, prices.get(symbol)) for symbol, state in states if state.quantity != 0]
    return Valuation(
        cash=cash,
        total_value=quantize(cash + sum((p.market_value for p in valued), ZERO)),
        unrealized_pnl=quantize(sum((p.unrealized_pnl for p in valued), ZERO)),
        realized_pnl=quantize(sum((state.net_realized_pnl for _symbol, state in states), ZERO)),
        fees=sum((state.fees for _symbol, state in states), ZERO),
        positions=valued,
        balances=list(balances),
    )
