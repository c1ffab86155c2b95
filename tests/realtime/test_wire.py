"""realtime.wire: MessagePack frames carry exactly the JSON messages, converted once per process."""

from __future__ import annotations

import msgpack
import orjson
import pytest

from realtime import protocol, wire
from tests import messages


def unpack(data: bytes):
    return msgpack.unpackb(data, raw=False)


def test_a_message_packs_to_the_same_keys_and_string_values():
    text = protocol.encode({**messages.ticker("BTCUSDT", "50000.10"), "seq": 7})
    assert unpack(wire.packed(text)) == orjson.loads(text)
    assert isinstance(unpack(wire.packed(text))["price"], str)  # prices stay decimal strings


def test_the_same_text_is_packed_once_and_the_memo_stays_bounded(monkeypatch):
    monkeypatch.setattr(wire, "_memo", {})
    monkeypatch.setattr(wire, "MEMO_SIZE", 3)
    texts = [protocol.encode({**messages.ticker("BTCUSDT", "1"), "seq": n}) for n in range(5)]
    first = wire.packed(texts[0])
    assert wire.packed(texts[0]) is first  # the memo's bytes, not a new encoding
    for text in texts[1:]:
        wire.packed(text)
    assert len(wire._memo) == 3 and texts[0] not in wire._memo  # the oldest went first
    assert unpack(wire.packed(texts[0])) == orjson.loads(texts[0])  # evicted: encoded again, the same


@pytest.mark.parametrize("count", [1, 2, 15, 16, 300, 65_535, 65_536])
def test_a_batched_frame_is_the_array_of_its_messages(count):
    parts = tuple(protocol.encode({"type": "trade", "n": n}) for n in range(count))
    frame = wire.packed_frame("[" + ",".join(parts) + "]", parts)
    assert unpack(frame) == [orjson.loads(p) for p in parts]


def test_a_single_frame_is_the_message_itself():
    text = protocol.encode(messages.ticker("ETHUSDT", "3000"))
    assert unpack(wire.packed_frame(text)) == orjson.loads(text)


def test_a_batched_send_carries_its_messages_for_a_msgpack_connection():
    from realtime import session

    send = session._one_frame(['{"a":1}', '{"b":2}'])
    assert send.parts == ('{"a":1}', '{"b":2}') and send.messages == 2
    assert unpack(wire.packed_frame(send.text, send.parts)) == [{"a": 1}, {"b": 2}]
    assert session._one_frame(['{"a":1}']).parts == ()  # one message: a plain frame
