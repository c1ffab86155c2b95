"""The connection inbox: arrival order kept, waiting market state replaced by newer state."""

from __future__ import annotations

import asyncio

from realtime.inbox import Inbox
from tests.support import TIMEOUT


def state(key: str, value: int) -> dict:
    return {"type": "market.message", "key": key, "text": str(value)}


def event(name: str) -> dict:
    return {"type": "websocket.receive", "text": name}


async def drain(inbox: Inbox) -> list:
    return [await inbox.get() for _ in range(len(inbox))]


async def test_events_come_out_in_arrival_order():
    inbox = Inbox()
    for item in (event("a"), state("ticker:BTCUSDT", 1), event("b"), {"type": "user.message", "text": "o"}):
        inbox.put(item)
    assert [e["text"] for e in await drain(inbox)] == ["a", "1", "b", "o"]


async def test_newer_state_replaces_waiting_state_with_the_same_key_in_its_place():
    inbox = Inbox()
    inbox.put(state("ticker:BTCUSDT", 1))
    inbox.put(event("ping"))
    assert inbox.put(state("ticker:BTCUSDT", 2)) is True
    inbox.put(state("ticker:ETHUSDT", 7))
    assert [e["text"] for e in await drain(inbox)] == ["2", "ping", "7"]
    assert inbox.conflated == 1


async def test_state_is_not_conflated_once_it_was_handled():
    inbox = Inbox()
    inbox.put(state("book:BTCUSDT", 1))
    assert (await inbox.get())["text"] == "1"
    assert inbox.put(state("book:BTCUSDT", 2)) is False
    assert (await inbox.get())["text"] == "2"


async def test_events_without_a_key_are_never_conflated():
    inbox = Inbox()
    for n in range(100):
        inbox.put({"type": "user.message", "text": str(n)})
    assert [e["text"] for e in await drain(inbox)] == [str(n) for n in range(100)]


async def test_a_long_backlog_of_prices_stays_one_per_key():
    inbox = Inbox()
    for n in range(100_000):
        inbox.put(state(f"ticker:S{n % 3}", n))
    assert len(inbox) == 3
    assert sorted(e["text"] for e in await drain(inbox)) == ["99997", "99998", "99999"]


async def test_get_waits_for_the_next_event():
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    assert not waiting.done()
    inbox.put(event("late"))
    assert (await asyncio.wait_for(waiting, TIMEOUT))["text"] == "late"


async def test_a_get_cancelled_while_waiting_leaves_the_inbox_as_it_was():
    inbox = Inbox()
    waiting = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    waiting.cancel()
    await asyncio.gather(waiting, return_exceptions=True)

    inbox.put(event("after"))

    assert inbox._waiter is None  # nothing is kept for a get that is not waiting
    assert (await asyncio.wait_for(inbox.get(), TIMEOUT))["text"] == "after"


def from_a_layer(item) -> bool:
    return not item["type"].startswith("websocket.")


def layer(name: str) -> dict:
    return {"type": "user.message", "text": name}


async def test_take_ready_takes_the_wanted_events_at_the_head_in_order_and_stops_at_the_first_other():
    inbox = Inbox()
    for item in (layer("a"), state("ticker:BTCUSDT", 1), layer("b"), event("ping"), layer("c")):
        inbox.put(item)

    taken = inbox.take_ready(from_a_layer)

    assert [e["text"] for e in taken] == ["a", "1", "b"]
    assert [e["text"] for e in await drain(inbox)] == ["ping", "c"]


async def test_take_ready_takes_nothing_when_the_head_is_not_wanted():
    inbox = Inbox()
    inbox.put(event("ping"))
    inbox.put(layer("a"))

    assert inbox.take_ready(from_a_layer) == []
    assert len(inbox) == 2


async def test_take_ready_on_an_empty_inbox_takes_nothing():
    assert Inbox().take_ready(from_a_layer) == []


async def test_take_ready_takes_the_newest_state_and_frees_its_key():
    inbox = Inbox()
    inbox.put(state("ticker:BTCUSDT", 1))
    inbox.put(state("ticker:BTCUSDT", 2))

    assert [e["text"] for e in inbox.take_ready(from_a_layer)] == ["2"]
    assert len(inbox) == 0
    assert inbox.put(state("ticker:BTCUSDT", 3)) is False  # a taken state is not replaced by a newer one
    assert [e["text"] for e in await drain(inbox)] == ["3"]


async def test_take_ready_stops_at_an_unwanted_state_event():
    inbox = Inbox()
    inbox.put(layer("a"))
    inbox.put(state("book:BTCUSDT", 1))
    inbox.put(layer("b"))

    taken = inbox.take_ready(lambda item: "key" not in item)

    assert [e["text"] for e in taken] == ["a"]
    assert [e["text"] for e in await drain(inbox)] == ["1", "b"]
