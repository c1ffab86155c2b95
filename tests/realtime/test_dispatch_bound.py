"""A client's frames waiting in front of the flood guard are bounded: past the bound they are dropped
and one overflow event is handed over instead (the consumer closes with 4029)."""

from __future__ import annotations

import asyncio

from realtime.dispatch import OVERFLOW, dispatch_in_order
from tests.support import TIMEOUT


async def handled_after_a_burst(frames: int, bound: int | None) -> list[dict]:
    source: asyncio.Queue = asyncio.Queue()
    for index in range(frames):
        source.put_nowait({"type": "websocket.receive", "text": str(index)})
    source.put_nowait({"type": "market.message", "text": "last"})  # the burst is over once this is handled
    seen: list[dict] = []
    done = asyncio.Event()

    async def dispatch(event: dict) -> None:
        seen.append(event)
        if event["type"] == "market.message":
            done.set()
        await asyncio.sleep(0)

    task = asyncio.create_task(dispatch_in_order([source.get], dispatch, None, bound))
    await asyncio.wait_for(done.wait(), TIMEOUT)
    task.cancel()
    return seen


async def test_a_burst_past_the_bound_is_cut_with_one_overflow():
    seen = await handled_after_a_burst(100, bound=10)

    types = [event["type"] for event in seen]
    assert types == ["websocket.receive"] * 10 + [OVERFLOW, "market.message"]
    assert [event["text"] for event in seen[:10]] == [str(n) for n in range(10)]  # the first ones, in order


async def test_without_a_bound_every_frame_is_handled():
    seen = await handled_after_a_burst(100, bound=None)

    assert [event["type"] for event in seen].count("websocket.receive") == 100
