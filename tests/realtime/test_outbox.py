"""realtime.outbox: what a slow client's queue keeps, replaces, drops, and refuses."""

from __future__ import annotations

import pytest

from realtime.outbox import Kind, Outbox, SlowConsumer


def drain(outbox: Outbox) -> list[str]:
    """Everything the socket would be sent, in order."""
    sent = []
    while (text := outbox.pop()) is not None:
        sent.append(text)
    return sent


def filled(capacity: int, *entries: tuple[str, Kind, str | None]) -> Outbox:
    outbox = Outbox(capacity)
    for text, kind, key in entries:
        outbox.put(text, kind, key)
    return outbox


def reliable(text: str) -> tuple[str, Kind, None]:
    return text, Kind.RELIABLE, None


def droppable(text: str) -> tuple[str, Kind, None]:
    return text, Kind.DROPPABLE, None


def state(text: str, key: str) -> tuple[str, Kind, str]:
    return text, Kind.STATE, key


# --- order and emptiness ------------------------------------------------------------------------


def test_an_empty_outbox_pops_nothing():
    outbox = Outbox(3)

    assert outbox.pop() is None
    assert len(outbox) == 0
    assert not outbox


def test_an_outbox_that_never_queued_holds_no_queue_and_one_that_did_works_as_before():
    outbox = Outbox(3)
    assert outbox._queue is None  # most connections never queue: they keep no deque

    outbox.put("a", Kind.RELIABLE)
    outbox.put("b", Kind.STATE, "ticker:BTCUSDT")

    assert drain(outbox) == ["a", "b"]


def test_a_zero_capacity_outbox_drops_market_trades_and_refuses_reliable_messages():
    outbox = Outbox(0)

    outbox.put("trade", Kind.DROPPABLE)
    assert (outbox.dropped, len(outbox)) == (1, 0)
    with pytest.raises(SlowConsumer):
        outbox.put("fill", Kind.RELIABLE)


def test_messages_come_out_in_the_order_they_went_in_across_kinds():
    outbox = filled(
        10,
        reliable("ack"),
        state("ticker-btc", "ticker:BTCUSDT"),
        droppable("trade-1"),
        state("book-btc", "orderbook:BTCUSDT"),
        reliable("order-1"),
        droppable("trade-2"),
    )

    assert drain(outbox) == ["ack", "ticker-btc", "trade-1", "book-btc", "order-1", "trade-2"]


def test_len_counts_every_queued_message():
    outbox = filled(10, reliable("a"), droppable("b"), state("c", "k1"), state("d", "k2"))

    assert len(outbox) == 4
    assert outbox
    outbox.pop()
    assert len(outbox) == 3


def test_an_outbox_can_be_reused_after_it_is_drained():
    outbox = filled(2, reliable("a"), reliable("b"))
    drain(outbox)

    outbox.put("c", Kind.RELIABLE)
    outbox.put("d", Kind.RELIABLE)

    assert drain(outbox) == ["c", "d"]


# --- STATE: conflation --------------------------------------------------------------------------


def test_a_newer_state_replaces_the_queued_one_in_its_original_place():
    outbox = filled(
        10,
        state("btc-1", "ticker:BTCUSDT"),
        state("eth-1", "ticker:ETHUSDT"),
        state("btc-2", "ticker:BTCUSDT"),
        state("btc-3", "ticker:BTCUSDT"),
    )

    assert drain(outbox) == ["btc-3", "eth-1"]


def test_conflation_is_counted():
    outbox = filled(10, state("1", "k"), state("2", "k"), state("3", "k"), state("x", "other"))

    assert outbox.conflated == 2
    assert outbox.dropped == 0
    assert len(outbox) == 2


def test_a_state_sent_already_is_not_replaced_but_queued_again():
    outbox = filled(10, state("btc-1", "ticker:BTCUSDT"))
    assert outbox.pop() == "btc-1"

    outbox.put("btc-2", Kind.STATE, "ticker:BTCUSDT")

    assert drain(outbox) == ["btc-2"]
    assert outbox.conflated == 0


def test_states_keep_their_place_relative_to_reliable_messages():
    outbox = filled(10, state("btc-1", "ticker:BTCUSDT"), reliable("order"), state("btc-2", "ticker:BTCUSDT"))

    assert drain(outbox) == ["btc-2", "order"]


def test_states_do_not_use_up_the_capacity_for_other_messages():
    outbox = filled(2, *(state(f"s{i}", f"key{i}") for i in range(20)))

    outbox.put("r1", Kind.RELIABLE)
    outbox.put("r2", Kind.RELIABLE)

    assert len(outbox) == 22


def test_many_updates_to_one_key_keep_one_entry():
    outbox = Outbox(5)
    for i in range(10_000):
        outbox.put(f"tick-{i}", Kind.STATE, "ticker:BTCUSDT")

    assert drain(outbox) == ["tick-9999"]
    assert outbox.conflated == 9_999


# --- DROPPABLE ----------------------------------------------------------------------------------


def test_droppables_are_dropped_oldest_first_when_full():
    outbox = filled(3, *(droppable(f"trade-{i}") for i in range(5)))

    assert drain(outbox) == ["trade-2", "trade-3", "trade-4"]
    assert outbox.dropped == 2


def test_a_droppable_is_dropped_when_the_outbox_is_full_of_reliable_messages():
    outbox = filled(2, reliable("r1"), reliable("r2"))

    outbox.put("trade", Kind.DROPPABLE)

    assert drain(outbox) == ["r1", "r2"]
    assert outbox.dropped == 1


def test_dropping_skips_reliable_messages_to_find_the_oldest_droppable():
    outbox = filled(3, reliable("r1"), droppable("t1"), droppable("t2"))

    outbox.put("t3", Kind.DROPPABLE)

    assert drain(outbox) == ["r1", "t2", "t3"]
    assert outbox.dropped == 1


def test_a_droppable_is_never_dropped_while_there_is_room():
    outbox = filled(3, droppable("t1"), droppable("t2"), droppable("t3"))

    assert outbox.dropped == 0
    assert len(outbox) == 3


# --- RELIABLE -----------------------------------------------------------------------------------


def test_a_reliable_message_evicts_the_oldest_droppable_when_full():
    outbox = filled(3, droppable("t1"), reliable("r1"), droppable("t2"))

    outbox.put("r2", Kind.RELIABLE)

    assert drain(outbox) == ["r1", "t2", "r2"]
    assert outbox.dropped == 1


def test_a_reliable_message_raises_slow_consumer_when_only_reliable_messages_are_queued():
    outbox = filled(2, reliable("r1"), reliable("r2"))

    with pytest.raises(SlowConsumer):
        outbox.put("r3", Kind.RELIABLE)


def test_a_reliable_message_raises_slow_consumer_when_only_states_could_make_room():
    outbox = filled(1, reliable("r1"), state("s", "ticker:BTCUSDT"))

    with pytest.raises(SlowConsumer):
        outbox.put("r2", Kind.RELIABLE)


def test_a_reliable_message_is_never_dropped_silently():
    outbox = filled(3, reliable("r1"), reliable("r2"), reliable("r3"))
    for i in range(100):
        outbox.put(f"trade-{i}", Kind.DROPPABLE)
        outbox.put(f"tick-{i}", Kind.STATE, "ticker:BTCUSDT")

    assert [text for text in drain(outbox) if text.startswith("r")] == ["r1", "r2", "r3"]


def test_slow_consumer_leaves_the_queue_as_it_was():
    outbox = filled(2, reliable("r1"), reliable("r2"))

    with pytest.raises(SlowConsumer):
        outbox.put("r3", Kind.RELIABLE)

    assert drain(outbox) == ["r1", "r2"]
    assert outbox.dropped == 0


def test_reading_makes_room_for_reliable_messages_again():
    outbox = filled(2, reliable("r1"), reliable("r2"))
    outbox.pop()

    outbox.put("r3", Kind.RELIABLE)

    assert drain(outbox) == ["r2", "r3"]


# --- bounded memory -----------------------------------------------------------------------------


def test_the_internal_queue_stays_bounded_under_a_long_stream_of_drops():
    capacity = 10
    state_keys = {f"ticker:SYM{i}" for i in range(3)}
    outbox = Outbox(capacity)
    outbox.put("ack", Kind.RELIABLE)
    longest = 0

    for i in range(100_000):
        outbox.put(f"trade-{i}", Kind.DROPPABLE)
        if i % 7 == 0:
            outbox.put(f"tick-{i}", Kind.STATE, f"ticker:SYM{i % 3}")
        longest = max(longest, len(outbox._queue))

    assert longest <= capacity + len(state_keys)
    assert len(outbox) <= capacity + len(state_keys)
    assert outbox.dropped == 100_000 - (capacity - 1)


def test_the_internal_queue_stays_bounded_when_only_droppables_arrive():
    outbox = Outbox(10)

    for i in range(100_000):
        outbox.put(f"trade-{i}", Kind.DROPPABLE)
        assert len(outbox._queue) <= 10

    assert drain(outbox) == [f"trade-{i}" for i in range(99_990, 100_000)]
    assert outbox.dropped == 99_990


def test_the_internal_queue_stays_bounded_when_full_of_reliable_messages():
    outbox = filled(10, *(reliable(f"r{i}") for i in range(10)))

    for i in range(100_000):
        outbox.put(f"trade-{i}", Kind.DROPPABLE)

    assert len(outbox._queue) == 10
    assert outbox.dropped == 100_000
