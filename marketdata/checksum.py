"""The order book checksum on every `orderbook` message: Kraken's WebSocket v2 book checksum.

CRC32 (unsigned, as zlib.crc32) of one string: the top 10 asks (best, i.e. lowest, first), then the
top 10 bids (best, i.e. highest, first); each level's price and then its quantity exactly as sent,
with the "." removed and the leading zeros stripped. A client that keeps its own copy of a book
recomputes it from the levels it holds; a mismatch means its copy is wrong (resubscribe).
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

CHECKSUM_LEVELS = 10


def book_checksum(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> int:
    """The checksum of levels as sent ([price, quantity] strings, best first on each side)."""
    return zlib.crc32(checksum_text(bids, asks).encode("ascii"))


def checksum_text(bids: Sequence[Sequence[str]], asks: Sequence[Sequence[str]]) -> str:
    """The string the checksum is taken of (shown in tests and useful when a client disagrees)."""
    return _side(asks) + _side(bids)


def _side(levels: Sequence[Sequence[str]]) -> str:
    return "".join(_digits(price) + _digits(quantity) for price, quantity in levels[:CHECKSUM_LEVELS])


def _digits(value: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"levels are checksummed as sent, as strings, not {type(value).__name__}")
    return value.replace(".", "").lstrip("0")
