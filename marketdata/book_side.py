"""One side of a local order book, with its prices kept in order. Pure.

The worker publishes the best levels of every book ten times a second and checks each book for a
cross after every diff. Selecting them from an unordered dict costs a pass over the whole side each
time (a Binance snapshot alone has 1000 levels a side), so the levels are kept sorted as they come
and go instead: a diff moves a few entries of two lists (bisect), and the best levels are a slice.

Two lists in step, not a dict by price: hashing a Decimal with decimal places costs about a
microsecond each time a new one is looked up (every level of every diff), more than the bisect.
"""

from __future__ import annotations

from bisect import bisect_left
from decimal import Decimal

# (price as the exchange wrote it, quantity as the exchange wrote it)
Level = tuple[str, str]


class BookSide:
    """Levels by price; the best is the highest (`highest_first`, bids) or the lowest (asks)."""

    def __init__(self, *, highest_first: bool):
        self.highest_first = highest_first
        self._prices: list[Decimal] = []  # ascending, whichever the side
        self._levels: list[Level] = []  # the level at each of _prices, in the same order

    def __len__(self) -> int:
        return len(self._prices)

    def set(self, price: Decimal, level: Level) -> None:
        """Put a level at `price`, replacing the one there (the newest strings are the ones sent)."""
        prices = self._prices
        index = bisect_left(prices, price)
        if index < len(prices) and prices[index] == price:
            self._levels[index] = level
        else:
            prices.insert(index, price)
            self._levels.insert(index, level)

    def remove(self, price: Decimal) -> None:
        """Take the level at `price` away; removing an absent level is normal (Binance says so)."""
        prices = self._prices
        index = bisect_left(prices, price)
        if index < len(prices) and prices[index] == price:
            del prices[index]
            del self._levels[index]

    def best(self) -> Decimal | None:
        if not self._prices:
            return None
        return self._prices[-1] if self.highest_first else self._prices[0]

    def best_levels(self, depth: int) -> list[Level]:
        """The best `depth` levels, best first: the stored (price, quantity) tuples themselves."""
        if depth <= 0:
            return []
        if self.highest_first:
            return self._levels[: -depth - 1 : -1]  # the last `depth`, highest first
        return self._levels[:depth]
