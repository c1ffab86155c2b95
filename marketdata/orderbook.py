"""A local order book per symbol, kept exactly as Binance's "How to manage a local order book correctly".

Pure: the worker feeds it diffs and snapshots and acts on the Outcome it gets back.

    AWAITING_SNAPSHOT --snapshot (buffered events bridge it)--> SYNCED
    SYNCED --gap in update ids, or a crossed book--> AWAITING_SNAPSHOT (the caller fetches a new snapshot)

1. Diffs that arrive before a snapshot are buffered.
2. On a snapshot, buffered events with u <= lastUpdateId are dropped.
3. The first applied event must straddle the snapshot: U <= lastUpdateId + 1 <= u.
4. Every later event's U must be the previous event's u + 1; otherwise the book is discarded.
5. Quantities are absolute; "0" removes the level (removing an absent level is normal).
A book whose best bid is at or above its best ask is wrong; it is discarded the same way, so a
crossed book is never published.
"""

from __future__ import annotations

from collections import deque
from decimal import Decimal
from enum import StrEnum

from marketdata.book_side import BookSide, Level
from marketdata.normalize import DepthDiff, DepthSnapshot

DEFAULT_BUFFER_LIMIT = 1000  # diffs kept while a snapshot is fetched (100 s at 100 ms)


class State(StrEnum):
    AWAITING_SNAPSHOT = "awaiting_snapshot"
    SYNCED = "synced"


class Outcome(StrEnum):
    BUFFERED = "buffered"  # kept until a snapshot arrives
    APPLIED = "applied"  # the book changed and is in sync: publishable
    STALE = "stale"  # older than the book: dropped, nothing changed
    RESYNC = "resync"  # sync lost or not reached: the caller must fetch a (new) snapshot


class OrderBook:
    """One symbol's book. Not thread safe; the worker drives it from one event loop."""

    def __init__(self, symbol: str, buffer_limit: int = DEFAULT_BUFFER_LIMIT):
        self.symbol = symbol
        self.state = State.AWAITING_SNAPSHOT
        self.last_update_id: int | None = None
        self.event_time: int | None = None  # exchange time (ms) of the last applied event
        self._bridged = False  # has the first event after the snapshot been applied?
        self._bids = BookSide(highest_first=True)
        self._asks = BookSide(highest_first=False)
        self._buffer: deque[DepthDiff] = deque(maxlen=buffer_limit)

    # --- what the worker asks ---------------------------------------------------------------------

    @property
    def synced(self) -> bool:
        return self.state is State.SYNCED

    @property
    def needs_snapshot(self) -> bool:
        return self.state is State.AWAITING_SNAPSHOT

    @property
    def buffered(self) -> int:
        return len(self._buffer)

    def top(self, depth: int) -> tuple[list[Level], list[Level]]:
        """The best `depth` levels per side, best first: (price, quantity), the exchange's strings."""
        if not self.synced:
            raise ValueError(f"the {self.symbol} book is not in sync; fetch a snapshot first")
        return self._bids.best_levels(depth), self._asks.best_levels(depth)

    def crossed(self) -> bool:
        best_bid, best_ask = self._bids.best(), self._asks.best()
        if best_bid is None or best_ask is None:
            return False
        return best_bid >= best_ask

    # --- what the stream feeds in -----------------------------------------------------------------

    def on_diff(self, diff: DepthDiff) -> Outcome:
        if diff.symbol != self.symbol:
            raise ValueError(f"a {diff.symbol} diff was fed to the {self.symbol} book")
        if self.state is State.AWAITING_SNAPSHOT:
            self._buffer.append(diff)
            return Outcome.BUFFERED
        return self._apply(diff)

    def on_snapshot(self, snapshot: DepthSnapshot) -> Outcome:
        """Load a REST snapshot and bridge the buffered events onto it."""
        if self.state is State.SYNCED:
            return Outcome.STALE  # a late answer to an earlier request: the live book is newer
        pending = [d for d in self._buffer if d.final_update_id > snapshot.last_update_id]
        if pending and pending[0].first_update_id > snapshot.last_update_id + 1:
            # The snapshot is older than the oldest event we still hold: ask for a newer one.
            self._buffer = deque(pending, maxlen=self._buffer.maxlen)
            return Outcome.RESYNC
        self._load(snapshot)
        self._buffer.clear()
        for index, diff in enumerate(pending):
            if self._apply(diff) is Outcome.RESYNC:
                self._buffer.extend(pending[index + 1 :])  # still good data for the next snapshot
                return Outcome.RESYNC
        if self.crossed():
            self._discard()
            return Outcome.RESYNC
        return Outcome.APPLIED

    def reset(self) -> None:
        """Forget everything (the stream was interrupted): the next diffs start a new sync."""
        self._discard()
        self._buffer.clear()

    # --- inside -----------------------------------------------------------------------------------

    def _apply(self, diff: DepthDiff) -> Outcome:
        assert self.last_update_id is not None
        if diff.final_update_id <= self.last_update_id and not self._bridged:
            return Outcome.STALE  # step 4: already contained in the snapshot
        if not self._continues(diff):
            return self._lose_sync(diff)
        _update(self._bids, diff.bids)
        _update(self._asks, diff.asks)
        self.last_update_id = diff.final_update_id
        self.event_time = diff.event_time
        self._bridged = True
        if self.crossed():
            return self._lose_sync(diff)
        return Outcome.APPLIED

    def _lose_sync(self, diff: DepthDiff) -> Outcome:
        self._discard()
        self._buffer.append(diff)  # the newest event is still good data for the next snapshot
        return Outcome.RESYNC

    def _continues(self, diff: DepthDiff) -> bool:
        expected = self.last_update_id + 1
        if self._bridged:
            return diff.first_update_id == expected  # step 6
        return diff.first_update_id <= expected <= diff.final_update_id  # step 5

    def _load(self, snapshot: DepthSnapshot) -> None:
        self._clear_sides()
        _update(self._bids, snapshot.bids)
        _update(self._asks, snapshot.asks)
        self.last_update_id = snapshot.last_update_id
        self._bridged = False
        self.state = State.SYNCED

    def _discard(self) -> None:
        self._clear_sides()
        self.last_update_id = self.event_time = None
        self._bridged = False
        self.state = State.AWAITING_SNAPSHOT

    def _clear_sides(self) -> None:
        self._bids = BookSide(highest_first=True)
        self._asks = BookSide(highest_first=False)


def _update(side: BookSide, levels: list[list[str]]) -> None:
    for price, quantity in levels:
        key = Decimal(price)
        if _is_zero(quantity):
            side.remove(key)  # removing a level we never saw is normal (step 9)
        else:
            side.set(key, (price, quantity))


def _is_zero(quantity: str) -> bool:
    """Decimal(quantity) == 0, for the decimal strings the normaliser lets through, mostly without a Decimal."""
    if quantity.isascii():
        # Digits and at most one point (normalize._UNSIGNED_DECIMAL): zero exactly when every digit is 0.
        return not quantity.lstrip("0.")
    return Decimal(quantity) == 0  # its \d also takes other scripts' digits, rare enough to let Decimal judge
