"""One side of a local order book, with its prices kept in order. Pure.

The worker publishes the best levels of every book ten times a second and checks each book for a
cross after every diff. Selecting them from an unordered dict costs a pass over the whole side each
time (a Binance snapshot alone has 1000 levels a side), so the prices are kept sorted as levels come
and go instead: a diff moves a few entries of a list (bisect), and the best levels are a slice.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from decimal import Decimal

# (price as the exchange wrote it, quantity as the exchange wrote it)
Level = tuple[str, str]


class BookSide:
    """Levels by price; the best is the highest (`highest_first`, bids) or the lowest (asks)."""

    def __init__(self, *, highest_first: bool):
        self.highest_first = highest_first
        self._levels: dict[Decimal, Level] = {}
        self._prices: list[Decimal] = []  # ascending, whichever the side

    def __len__(self) -> int:
        return len(self._levels)

    def set(self, price: Decimal, level: Level) -> None:
        """Put a level at `price`, replacing the one there (the newest strings are the ones sent)."""
        if price not in self._levels:
            insort(self._prices, price)
        self._levels[price] = level

    def remove(self, price: Decimal) -> None:
        """Take the level at `price` away; removing an absent level is normal (Binance says so)."""
        if self._levels.pop(price, None) is not None:
            del self._prices[bisect_left(self._prices, price)]

    def best(self) -> Decimal | None:
        if not self._prices:
            return None
        return self._prices[-1] if self.highest_first else self._prices[0]

    def best_levels(self, depth: int) -> list[list[str]]:
        """The best `depth` levels, best first, as [price, quantity] strings."""
        if depth <= 0:
            return []
        prices = reversed(self._prices[-depth:]) if self.highest_first else self._prices[:depth]
        levels = self._levels
        return [list(levels[price]) for price in prices]
