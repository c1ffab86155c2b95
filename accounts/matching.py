"""Paper matching: which resting orders a market trade fills, at what price and quantity.

Pure. The rules of the paper exchange:
- a market order fills in full at the last trade price (the caller rejects it when none is known);
- a limit order whose price already crosses the last trade price when it is placed (a buy at or
  above it, a sell at or below it) takes liquidity at once, at the last price, as on an exchange;
- a resting limit buy fills in full when a trade prints at or below its price, a resting limit sell
  when one prints at or above it, at the limit price. Trades are coalesced into the lowest and
  highest price seen since the last matching run, so no crossing is missed when prints come faster
  than the database.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

BUY = "buy"
SELL = "sell"


@dataclass(frozen=True)
class RestingOrder:
    order_id: int  # ids grow with time, so they give time priority
    side: str
    price: Decimal
    remaining: Decimal


@dataclass(frozen=True)
class Match:
    order_id: int
    price: Decimal
    quantity: Decimal


@dataclass(frozen=True)
class PriceRange:
    """The lowest and highest trade price printed since the last matching run."""

    low: Decimal
    high: Decimal

    @classmethod
    def of(cls, price: Decimal) -> PriceRange:
        return cls(price, price)

    def including(self, price: Decimal) -> PriceRange:
        return PriceRange(min(self.low, price), max(self.high, price))


def resting_crosses(side: str, limit: Decimal, prices: PriceRange) -> bool:
    """Whether a trade in the range reached a resting order's limit price."""
    if side == BUY:
        return prices.low <= limit
    if side == SELL:
        return prices.high >= limit
    raise ValueError(f"side must be buy or sell, not {side!r}")


def match_resting(orders: Iterable[RestingOrder], prices: PriceRange) -> list[Match]:
    """The resting orders the trades fill, best price first, then oldest: each in full at its limit."""
    crossed = [o for o in orders if o.remaining > 0 and resting_crosses(o.side, o.price, prices)]
    crossed.sort(key=lambda o: (-o.price if o.side == BUY else o.price, o.order_id))
    return [Match(order_id=o.order_id, price=o.price, quantity=o.remaining) for o in crossed]


def immediate_price(order_type: str, side: str, limit: Decimal | None, last_price: Decimal | None) -> Decimal | None:
    """The price a new order fills at as it is placed, or None if it rests (or cannot fill: no price)."""
    if last_price is None:
        return None
    if order_type == "market":
        return last_price
    if limit is None:
        raise ValueError("a limit order needs a price")
    if side == BUY:
        return last_price if last_price <= limit else None
    if side == SELL:
        return last_price if last_price >= limit else None
    raise ValueError(f"side must be buy or sell, not {side!r}")
