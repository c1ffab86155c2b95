"""?format=msgpack: the same messages as MessagePack binary frames, batched frames as arrays."""

from __future__ import annotations

import asyncio

import msgpack
import orjson
import pytest
import websockets

from tests import messages
from tests.integration.harness import Client
from tests.integration.test_slow_client import publish_alerts, silent_client
from tests.schema import check_frame
from tests.support import TIMEOUT, access_token

ALERTS = 2000  # ~2 KB each: past the kernel's socket buffers, so messages wait and are batched


@pytest.fixture(scope="module")
def roomy_gateway(stack):
    # A client may fall far behind before it counts as slow; pings off for the silent one.
    return stack.daphne(None, "--ping-interval", "3600", "--ping-timeout", "3600", WS_MESSAGE_QUEUE_SIZE="5000")


async def binary_frame(ws) -> dict | list:
    """The next frame, which must be binary, decoded and checked against the contract message by message."""
    data = await asyncio.wait_for(ws.recv(), TIMEOUT)
    assert isinstance(data, bytes), f"a text frame on a msgpack connection: {data[:200]!r}"
    frame = msgpack.unpackb(data, raw=False)
    for message in frame if isinstance(frame, list) else [frame]:
        check_frame(message)
    return frame


def without_time(message: dict) -> dict:
    return {k: v for k, v in message.items() if k != "timestamp"}


async def until_market(read, count: int) -> list[dict]:
    """Messages (heartbeats left out) until `count` market messages have arrived."""
    got = []
    while sum(m["type"] in {"ticker", "trade", "orderbook"} for m in got) < count:
        message = await read()
        if message["type"] != "heartbeat":
            got.append(message)
    return got


async def test_a_msgpack_client_decodes_the_same_messages_as_a_json_client(gateway, redis_publish):
    sent = [messages.ticker("XRPUSDT", "0.51230000"), messages.trade("XRPUSDT", "0.51240000")]
    sent.append(messages.orderbook("XRPUSDT"))
    async with await Client.connect(f"{gateway.ws}/ws/market") as plain:
        packed = await websockets.connect(f"{gateway.ws}/ws/market?format=msgpack", open_timeout=TIMEOUT)
        try:
            requests = [{"type": f"subscribe_{s}", "symbols": ["XRPUSDT"]} for s in ("ticker", "trades", "orderbook")]
            for request in requests:  # requests stay JSON text on either format
                await plain.send(request)
                await packed.send(orjson.dumps(request).decode())
            acks = [await plain.recv_until(lambda m: m["type"] == "subscribed") for _ in requests]
            packed_acks = [await binary_frame(packed) for _ in requests]
            for message in sent:
                await redis_publish.apublish_market(message)
            json_messages = await until_market(plain.recv, len(sent))
            packed_messages = await until_market(lambda: binary_frame(packed), len(sent))
        finally:
            await packed.close()

    assert [without_time(a) for a in packed_acks] == [without_time(a) for a in acks]  # each ack is stamped when sent
    assert packed_messages == json_messages
    assert [m["type"] for m in packed_messages if m["type"] != "subscribed"][-3:] == ["ticker", "trade", "orderbook"]
    assert all(isinstance(m.get("price", ""), str) for m in packed_messages)  # decimal strings, never floats


async def test_a_batched_msgpack_client_gets_arrays_of_every_message_in_order(roomy_gateway, stack, redis_publish):
    user = stack.users["erin"]
    url = f"{roomy_gateway.ws}/ws/trading?token={access_token(user)}&format=msgpack&batch=1"
    ws = await silent_client(url)
    try:
        await ws.send('{"type": "subscribe", "channels": ["risk_alerts"]}')
        ack = await binary_frame(ws)  # joined: every alert from now on is this client's
        assert ack["type"] == "subscribed", ack
        await publish_alerts(redis_publish, user, ALERTS)  # the client reads nothing meanwhile: they wait
        frames, alerts = [], []
        while len(alerts) < ALERTS:
            frames.append(await binary_frame(ws))
            batch = frames[-1] if isinstance(frames[-1], list) else [frames[-1]]
            alerts += [m for m in batch if m["type"] == "risk_alert"]
    finally:
        await ws.close()

    assert any(isinstance(frame, list) and len(frame) > 1 for frame in frames), "nothing was batched"
    assert [a["current_value"] for a in alerts] == [str(n) for n in range(ALERTS)]
    assert [a["seq"] for a in alerts] == list(range(alerts[0]["seq"], alerts[0]["seq"] + ALERTS))


async def test_an_unknown_format_is_refused_with_4004_saying_which(gateway):
    async with await Client.connect(f"{gateway.ws}/ws/market?format=xml") as client:
        error = await client.recv()
        code, _reason = await client.closed()
    assert error["type"] == "error" and error["code"] == 4004 and "'xml'" in error["message"]
    assert code == 4004
