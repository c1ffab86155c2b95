"""The order book checksum on every `orderbook` message: Kraken's WebSocket v2 book checksum.

CRC32 (unsigned, as zlib.crc32) of one string: the top 10 asks (best, i.e. lowest, first), then the
top 10 bids (best, i.e. highest, first); each level's price and then its quantity exactly as sent,
with the "." removed and the leading zeros stripped. A client that keeps its own copy of a book
recomputes it from the levels it holds; a mismatch means its copy is wrong (resubscribe).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from itertools import chain, repeat

CHECKSUM_LEVELS = 10


def book_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """The checksum of levels as sent ([price, quantity] strings, best first on each side)."""
    return zlib.crc32(checksum_text(bids, asks).encode("ascii"))


def checksum_text(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> str:
    """The string the checksum is taken of (shown in tests and useful when a client disagrees)."""
    values = chain(*asks[:CHECKSUM_LEVELS], *bids[:CHECKSUM_LEVELS])
    # Stripping each value's leading zeros and points, then every point, gives what dropping the
    # point and then the leading zeros gives, but lets map do the per-value work: the worker takes
    # hundreds of checksums a second, and a Python loop over the 40 values was most of their cost.
    # str.lstrip refuses anything but a string (a float would be a value not as sent).
    return "".join(map(str.lstrip, values, repeat("0."))).replace(".", "")
