"""?batch=1: messages already waiting for a connection go out as one JSON array frame, in order;
a connection that did not ask keeps one message per frame, on the same server."""

from __future__ import annotations

import asyncio

import msgpack
import orjson
import pytest
from asgiref.sync import sync_to_async

from tests import messages
from tests.integration.harness import Client
from tests.integration.test_slow_client import PAD, publish_alerts, silent_client
from tests.schema import check_frame
from tests.support import TIMEOUT, access_token

ALERTS = 4000  # ~2 KB each: past the kernel's socket buffers and daphne's high-water mark


@pytest.fixture(scope="module")
def roomy_gateway(stack):
    # A client may fall 5000 trading events behind before it counts as slow; pings off for the silent one.
    return stack.daphne(None, "--ping-interval", "3600", "--ping-timeout", "3600", WS_MESSAGE_QUEUE_SIZE="5000")


async def frames_until(ws, count: int) -> list:
    """Frames (parsed, each checked against the contract) until `count` risk alerts have arrived."""
    frames, alerts = [], 0
    while alerts < count:
        try:
            frame = orjson.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        except TimeoutError:
            raise AssertionError(f"after {alerts} alerts in {len(frames)} frames, last {frames[-1:]}") from None
        check_frame(frame)
        frames.append(frame)
        alerts += sum(m["type"] == "risk_alert" for m in (frame if isinstance(frame, list) else [frame]))
    return frames


def alerts_in(frames: list) -> list[dict]:
    return [m for f in frames for m in (f if isinstance(f, list) else [f]) if m["type"] == "risk_alert"]


@pytest.mark.slow
async def test_a_batched_client_gets_every_waiting_message_in_order_and_others_one_per_frame(
    roomy_gateway, stack, redis_publish
):
    user = stack.users["dave"]
    url = f"{roomy_gateway.ws}/ws/trading?token={access_token(user)}"
    batched = await silent_client(url + "&batch=1")
    await batched.send('{"type": "subscribe", "channels": ["risk_alerts"]}')
    async with await Client.connect(url) as plain:
        await plain.subscribe({"type": "subscribe", "channels": ["risk_alerts"]})
        # The batched client reads nothing while the alerts are published: they wait for it.
        await publish_alerts(redis_publish, user, ALERTS)
        plain_frames = await frames_until(plain.ws, ALERTS)
    batched_frames = await frames_until(batched, ALERTS)
    await batched.close()

    arrays = [frame for frame in batched_frames if isinstance(frame, list)]
    assert arrays, "nothing was waiting as one frame"
    assert all(len(array) > 1 for array in arrays)
    for frames in (batched_frames, plain_frames):
        alerts = alerts_in(frames)
        assert [a["current_value"] for a in alerts] == [str(n) for n in range(ALERTS)]  # every one, in order
        assert [a["seq"] for a in alerts] == list(range(alerts[0]["seq"], alerts[0]["seq"] + ALERTS))
    assert not any(isinstance(frame, list) for frame in plain_frames)  # one message per frame without ?batch=1
    assert len(PAD) * ALERTS > 4_000_000


async def test_a_batched_client_that_keeps_up_gets_single_messages(gateway, stack, redis_publish):
    user = stack.users["erin"]
    async with await Client.connect(f"{gateway.ws}/ws/trading?token={access_token(user)}&batch=1") as client:
        ack = await client.subscribe({"type": "subscribe", "channels": ["risk_alerts"]})
        await sync_to_async(redis_publish.publish_risk_alert)(
            user, alert_type="position_limit_exceeded", severity="high", message="m", limit_value="1", current_value="2"
        )
        alert = await client.recv_until(lambda m: isinstance(m, dict) and m["type"] == "risk_alert")
    assert ack["type"] == "subscribed" and alert["current_value"] == "2"


MARKET_TRADES = 300


async def market_trades_until(ws, trade_ids: set[int]) -> list:
    """Frames (parsed: JSON text, or MessagePack for a binary frame; each message checked against
    the contract) until every trade of `trade_ids` arrived."""
    frames, seen = [], set()
    while not trade_ids <= seen:
        try:
            data = await asyncio.wait_for(ws.recv(), TIMEOUT)
        except TimeoutError:
            raise AssertionError(f"{len(seen)} of {len(trade_ids)} trades in {len(frames)} frames") from None
        frame = msgpack.unpackb(data) if isinstance(data, bytes) else orjson.loads(data)
        for message in frame if isinstance(frame, list) else [frame]:
            check_frame(message)
            seen.add(message.get("trade_id"))
        frames.append(frame)
    return frames


async def test_market_updates_that_waited_in_the_process_reach_a_batched_client_as_arrays_in_order(
    gateway, redis_publish
):
    subscribe = {"type": "subscribe_trades", "symbols": ["ADAUSDT"]}
    url = f"{gateway.ws}/ws/market"
    async with (
        await Client.connect(url + "?batch=1") as batched,
        await Client.connect(url + "?batch=1&format=msgpack") as packed,
        await Client.connect(url) as plain,
    ):
        await batched.subscribe(subscribe)
        await plain.subscribe(subscribe)
        await packed.send(subscribe)
        ack = msgpack.unpackb(await asyncio.wait_for(packed.ws.recv(), TIMEOUT))
        assert ack["type"] == "subscribed", ack
        sent = [messages.trade("ADAUSDT", f"0.{n:04d}") for n in range(1, MARKET_TRADES + 1)]
        # One pipeline of PUBLISHes, as the worker sends a round: they reach the process together.
        await redis_publish.asend_market_many(await redis_publish.aprepare_market_many(sent))
        ids = {trade["trade_id"] for trade in sent}
        received = [await market_trades_until(client.ws, ids) for client in (batched, packed, plain)]

    def mine(frames: list) -> list[dict]:
        return [m for f in frames for m in (f if isinstance(f, list) else [f]) if m.get("trade_id") in ids]

    for frames in received[:2]:
        arrays = [frame for frame in frames if isinstance(frame, list)]
        assert arrays, "no market updates were written together"
        assert all(len(array) > 1 for array in arrays)
    for frames in received:
        got = mine(frames)
        assert [m["price"] for m in got] == [m["price"] for m in sent]  # every one, once, in order
        assert [m["seq"] for m in got] == list(range(got[0]["seq"], got[0]["seq"] + MARKET_TRADES))
    assert not any(isinstance(frame, list) for frame in received[2])
