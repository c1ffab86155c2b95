"""The consumers' event loop: every source (the socket, each channel layer) into one inbox, handled in order.

Channels' `await_many_dispatch` creates a task and an `asyncio.wait` per event per connection, which
profiled as a quarter of the fan-out cost (docs/BENCHMARKS.md); here each source has one long-lived
task that feeds a single inbox, and handlers still never run concurrently.
"""

from __future__ import annotations

import asyncio
import dataclasses

from realtime import metrics
from realtime.inbox import Inbox


async def dispatch_in_order(sources: list, dispatch, dispatch_layer_events=None) -> None:
    """Dispatch events from every source one at a time, in arrival order, until a handler raises.

    With `dispatch_layer_events`, channel-layer events that are already waiting together are handed
    over in one call (so a batched connection can write them as one frame); nothing waits for more.
    """
    inbox = Inbox()

    async def pump(source) -> None:
        try:
            while True:
                if inbox.put(await source()):
                    metrics.INBOX_CONFLATIONS.inc()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a failing source ends the connection, as with Channels
            inbox.put(_Failed(error))

    pumps = [asyncio.create_task(pump(source)) for source in sources]
    try:
        while True:
            event = await inbox.get()
            if isinstance(event, _Failed):
                raise event.error
            more = inbox.take_ready(_from_a_layer) if dispatch_layer_events and _from_a_layer(event) else []
            if more:
                await dispatch_layer_events([event, *more])
            else:
                await dispatch(event)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


def _from_a_layer(event) -> bool:
    return isinstance(event, dict) and not event.get("type", "").startswith("websocket.")


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: BaseException
