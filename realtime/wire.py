"""The frame formats a connection can ask for: JSON text (the default) or MessagePack (`?format=msgpack`).

A MessagePack connection receives the same messages, each the MessagePack encoding of the JSON
message (same keys, same string values: prices stay decimal strings), as binary frames; a batched
frame is a MessagePack array of them. Client requests stay JSON text frames on either format.

Encoded once per update per process: every connection of a process is handed the same text for an
update, so `packed` keeps a small memo from that text to its MessagePack bytes (bounded, oldest out;
a text evicted while a slow client still holds it is simply encoded again). A batched frame joins the
memoised bytes behind an array header, without decoding or re-encoding them.
"""

from __future__ import annotations

import msgpack
import orjson

JSON = "json"
MSGPACK = "msgpack"
FORMATS = (JSON, MSGPACK)
MEMO_SIZE = 1024  # texts in flight at once in one process: updates are delivered within moments

_memo: dict[str, bytes] = {}


def packed(text: str) -> bytes:
    """The MessagePack bytes of one encoded JSON message, converted once per process."""
    found = _memo.get(text)
    if found is None:
        found = msgpack.packb(orjson.loads(text), use_bin_type=True)
        if len(_memo) >= MEMO_SIZE:
            del _memo[next(iter(_memo))]  # the oldest: a dict keeps insertion order
        _memo[text] = found
    return found


def array_header(count: int) -> bytes:
    """MessagePack's array header for `count` elements (fixarray, array 16 or array 32)."""
    if count < 16:
        return bytes((0x90 | count,))
    if count < 1 << 16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def packed_frame(text: str, parts: tuple[str, ...] = ()) -> bytes:
    """A frame for a MessagePack connection: one message, or the array of a batched frame's `parts`."""
    if not parts:
        return packed(text)
    return array_header(len(parts)) + b"".join(packed(part) for part in parts)
