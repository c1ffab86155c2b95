"""Spot balances and what orders reserve, pay and receive: the paper exchange's bookkeeping. Pure.

Each asset of a user has a free and a locked amount. An open limit order locks what it may need:
a buy the quote amount of quantity x limit plus the fee at the highest fee rate (rounded up), a sell
its base quantity. Each fill spends from the order's own reservation (a buy's cost, a sell's
quantity); what an order has left reserved when it ends (filled or canceled) goes back to free.
Fill values and fees are rounded down, so a buy's fills, whatever their sizes and prices at or
under the limit, never cost more than its reservation. Nothing here can make a balance negative:
every change that would is refused with `Shortfall`, saying what is missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounts.money import WIDE, ZERO, plain, quantize_down, quantize_up
from realtime.protocol import Side

BUY, SELL = Side.BUY.value, Side.SELL.value  # the wire contract's words (realtime.protocol)


class Shortfall(Exception):
    """An asset's free balance is below what a change needs."""

    def __init__(self, asset: str, needed: Decimal, available: Decimal):
        super().__init__(f"needs {plain(needed)} {asset}, {plain(available)} {asset} free")
        self.asset, self.needed, self.available = asset, needed, available

    @property
    def missing(self) -> Decimal:
        return self.needed - self.available


@dataclass(frozen=True)
class Funds:
    """One asset of one user."""

    asset: str
    free: Decimal = ZERO
    locked: Decimal = ZERO

    @property
    def total(self) -> Decimal:
        return self.free + self.locked

    def reserve(self, amount: Decimal) -> Funds:
        """Move `amount` from free to locked (an order is placed)."""
        self._check(amount, self.free)
        return Funds(self.asset, WIDE.subtract(self.free, amount), WIDE.add(self.locked, amount))

    def release(self, amount: Decimal) -> Funds:
        """Move `amount` from locked back to free (an order ended with some of its reservation left)."""
        if amount < 0 or amount > self.locked:
            raise ValueError(f"cannot release {amount} of {self.locked} locked {self.asset}")
        return Funds(self.asset, WIDE.add(self.free, amount), WIDE.subtract(self.locked, amount))

    def spend_locked(self, amount: Decimal) -> Funds:
        """Pay `amount` out of what an order had locked (a resting order fills)."""
        if amount < 0 or amount > self.locked:
            raise ValueError(f"cannot spend {amount} of {self.locked} locked {self.asset}")
        return Funds(self.asset, self.free, WIDE.subtract(self.locked, amount))

    def spend_free(self, amount: Decimal) -> Funds:
        """Pay `amount` out of the free balance (a market order fills)."""
        self._check(amount, self.free)
        return Funds(self.asset, WIDE.subtract(self.free, amount), self.locked)

    def credit(self, amount: Decimal) -> Funds:
        if amount < 0:
            raise ValueError("a credit is never negative")
        return Funds(self.asset, WIDE.add(self.free, amount), self.locked)

    def _check(self, amount: Decimal, available: Decimal) -> None:
        if amount < 0:
            raise ValueError("an amount to take is never negative")
        if amount > available:
            raise Shortfall(self.asset, amount, available)


# --- fills and reservations ----------------------------------------------------------------------


def fill_value(quantity: Decimal, price: Decimal) -> Decimal:
    """What a fill is worth in the quote asset, rounded down to the stored precision."""
    return quantize_down(WIDE.multiply(quantity, price))


def fee_for(value: Decimal, rate: Decimal) -> Decimal:
    """The fee on a fill of that value, in the quote asset, rounded down."""
    return quantize_down(WIDE.multiply(value, rate))


def buy_cost(quantity: Decimal, price: Decimal, rate: Decimal) -> Decimal:
    """What a buy fill takes from the quote balance: its value plus its fee."""
    value = fill_value(quantity, price)
    return WIDE.add(value, fee_for(value, rate))


def buy_reservation(quantity: Decimal, limit: Decimal, rate: Decimal) -> Decimal:
    """What a buy limit order locks: quantity x limit x (1 + rate), rounded up. It covers any fills
    at or under the limit at a rate up to `rate`, because each fill's cost is rounded down."""
    return quantize_up(WIDE.multiply(WIDE.multiply(quantity, limit), WIDE.add(1, rate)))


def reservation(side: str, quantity: Decimal, limit: Decimal, rate: Decimal) -> Decimal:
    """What an order of that side locks: quote for a buy, base for a sell."""
    if side == BUY:
        return buy_reservation(quantity, limit, rate)
    if side == SELL:
        return quantity
    raise ValueError(f"side must be buy or sell, not {side!r}")


@dataclass(frozen=True)
class Settlement:
    """What one fill does to the order's reservation and to the user's two assets."""

    value: Decimal
    fee: Decimal
    reserved_left: Decimal  # the order's reservation after this fill
    quote: Funds
    base: Funds


def settle_fill(
    *,
    side: str,
    quantity: Decimal,
    price: Decimal,
    rate: Decimal,
    reserved: Decimal,
    quote: Funds,
    base: Funds,
) -> Settlement:
    """Book one fill: pay from the order's reservation first, the rest (an order without one, a
    market order) from the free balance; receive into free. Raises Shortfall, changing nothing,
    when the user cannot pay."""
    value = fill_value(quantity, price)
    fee = fee_for(value, rate)
    if side == BUY:
        cost = WIDE.add(value, fee)
        from_locked = min(cost, reserved)
        quote = quote.spend_locked(from_locked).spend_free(WIDE.subtract(cost, from_locked))
        return Settlement(value, fee, WIDE.subtract(reserved, from_locked), quote, base.credit(quantity))
    if side == SELL:
        from_locked = min(quantity, reserved)
        base = base.spend_locked(from_locked).spend_free(WIDE.subtract(quantity, from_locked))
        return Settlement(
            value, fee, WIDE.subtract(reserved, from_locked), quote.credit(WIDE.subtract(value, fee)), base
        )
    raise ValueError(f"side must be buy or sell, not {side!r}")
