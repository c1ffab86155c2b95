"""?batch=1: messages already waiting for a connection go out as one JSON array frame, in order;
a connection that did not ask keeps one message per frame, on the same server."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from asgiref.sync import sync_to_async

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
