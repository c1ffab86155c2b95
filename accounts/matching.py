"""Paper matching: which orders a market trade or the order book fills, at what price and quantity.

Pure. The rules of the paper exchange:
- a market order takes the order book level by level (asks for a buy, bids for a sell) until it is
  filled or the book runs out; its average price is the volume-weighted price of what it took;
- a limit order that crosses the book when it is placed takes the levels at or better than its
  limit the same way (as a taker), and the rest of it rests;
- a resting limit buy fills when a trade prints at or below its price, a resting sell when one
  prints at or above it, at the limit price, never more in all than the trade's quantity: best
  price first, then oldest first at a price level; and only orders placed before the trade
  printed (exchange time) take part.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from accounts.money import ZERO, quantize
from realtime.protocol import Side

BUY, SELL = Side.BUY.value, Side.SELL.value  # the wire contract's words (realtime.protocol)

Level = tuple[Decimal, Decimal]  # (price, quantity)


@dataclass(frozen=True)
class Trade:
    """One print of the market: price, quantity and the exchange's time of it."""

    price: Decimal
    quantity: Decimal
    time: datetime
    trade_id: str = ""


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
class Reach:
    """The open limit orders of a symbol, as far as a trade can reach them: the best of each side."""

    highest_buy: Decimal | None
    lowest_sell: Decimal | None

    def sides(self, price: Decimal) -> tuple[str, ...]:
        """The sides with at least one open order a trade at `price` crosses."""
        buys = self.highest_buy is not None and crosses(BUY, self.highest_buy, price)
        sells = self.lowest_sell is not None and crosses(SELL, self.lowest_sell, price)
        return (BUY,) * buys + (SELL,) * sells


def crosses(side: str, limit: Decimal, price: Decimal) -> bool:
    """Whether a trade (or a book level) at `price` reaches an order's limit."""
    if side == BUY:
        return price <= limit
    if side == SELL:
        return price >= limit
    raise ValueError(f"side must be buy or sell, not {side!r}")


def priority(order: RestingOrder) -> tuple[Decimal, int]:
    """Best price first (highest buy, lowest sell), then oldest."""
    return (-order.price if order.side == BUY else order.price, order.order_id)


def allocate(orders: Iterable[RestingOrder], trade: Trade) -> list[Match]:
    """Fill the resting orders of one side that the trade crosses, in priority, up to its quantity."""
    left = trade.quantity
    matches = []
    for order in sorted((o for o in orders if crosses(o.side, o.price, trade.price)), key=priority):
        if left <= 0:
            break
        quantity = min(order.remaining, left)
        if quantity <= 0:
            continue
        matches.append(Match(order_id=order.order_id, price=order.price, quantity=quantity))
        left -= quantity
    return matches


def walk_book(side: str, levels: Sequence[Level], quantity: Decimal, limit: Decimal | None = None) -> list[Level]:
    """The (price, quantity) an order takes from the book's other side, best level first.

    `levels` are that side's levels best first (asks for a buy, bids for a sell). A limit stops the
    walk at the first level beyond it. The result's quantities add up to at most `quantity`.
    """
    if side not in (BUY, SELL):
        raise ValueError(f"side must be buy or sell, not {side!r}")
    taken: list[Level] = []
    left = quantity
    for price, available in levels:
        if left <= 0:
            break
        if limit is not None and not crosses(side, limit, price):
            break
        take = min(available, left)
        if take > 0:
            taken.append((price, take))
            left -= take
    return taken


def vwap(fills: Iterable[Level]) -> Decimal | None:
    """The volume-weighted average price of fills, or None for none."""
    quantity = value = ZERO
    for price, amount in fills:
        quantity += amount
        value += price * amount
    return None if quantity == 0 else quantize(value / quantity)
