"""The local book follows Binance's procedure: buffer, snapshot, bridge, then strictly consecutive ids."""

from __future__ import annotations

from decimal import Decimal

from hypothesis import assume, example, given
from hypothesis import strategies as st

from marketdata import normalize
from marketdata.exceptions import NormalizeError
from marketdata.orderbook import OrderBook, Outcome, State
from tests.marketdata.builders import DEPTH_UPDATE_SAMPLE, diff, raw, sample, snapshot

BIDS = [["100.00", "1.0"], ["99.50", "2.0"], ["99.00", "3.0"]]
ASKS = [["100.50", "1.5"], ["101.00", "2.5"], ["101.50", "3.5"]]


def as_kept(levels: list[list[str]]) -> list[tuple[str, str]]:
    """Levels as the book keeps and returns them: (price, quantity) tuples of the exchange's strings."""
    return [(price, quantity) for price, quantity in levels]


def synced_book(last_update_id: int = 100) -> OrderBook:
    """A book that buffered one bridging event and then loaded a snapshot at `last_update_id`."""
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(last_update_id - 1, last_update_id + 1))
    assert book.on_snapshot(snapshot(last_update_id, BIDS, ASKS)) is Outcome.APPLIED
    return book


def test_diffs_before_a_snapshot_are_buffered_and_the_book_asks_for_one():
    book = OrderBook("BTCUSDT")

    assert book.needs_snapshot
    assert book.on_diff(diff(1, 2)) is Outcome.BUFFERED
    assert book.buffered == 1
    assert not book.synced


def test_a_snapshot_with_bridging_events_syncs_the_book():
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(95, 99, bids=[["98.00", "9"]]))  # all before the snapshot: dropped
    book.on_diff(diff(100, 102, bids=[["100.00", "5.0"]]))  # straddles lastUpdateId + 1 = 101
    book.on_diff(diff(103, 104, asks=[["100.50", "0"]]))

    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) is Outcome.APPLIED

    assert book.state is State.SYNCED
    assert book.last_update_id == 104
    bids, asks = book.top(10)
    assert bids == [("100.00", "5.0"), ("99.50", "2.0"), ("99.00", "3.0")]
    assert asks == [("101.00", "2.5"), ("101.50", "3.5")]


def test_buffered_events_already_in_the_snapshot_are_dropped():
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(90, 95, bids=[["50.00", "1"]]))
    book.on_diff(diff(96, 100, bids=[["51.00", "1"]]))

    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) is Outcome.APPLIED

    assert book.top(10)[0] == as_kept(BIDS)  # neither stale event touched the snapshot


def test_after_a_snapshot_the_first_event_must_straddle_it():
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(90, 95))
    book.on_snapshot(snapshot(100, BIDS, ASKS))  # the only buffered event was stale

    assert book.on_diff(diff(97, 100)) is Outcome.STALE
    assert book.on_diff(diff(101, 101, bids=[["99.75", "1"]])) is Outcome.APPLIED
    assert book.last_update_id == 101


def test_a_snapshot_older_than_the_buffered_events_is_refused_and_another_is_needed():
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(105, 110))

    assert book.on_snapshot(snapshot(100, BIDS, ASKS)) is Outcome.RESYNC

    assert book.needs_snapshot
    assert book.buffered == 1  # kept for the next, newer snapshot
    assert book.on_snapshot(snapshot(107, BIDS, ASKS)) is Outcome.APPLIED
    assert book.last_update_id == 110


def test_consecutive_events_apply_in_order():
    book = synced_book(100)

    assert book.on_diff(diff(102, 105, asks=[["100.25", "0.5"]])) is Outcome.APPLIED
    assert book.on_diff(diff(106, 106, bids=[["100.10", "0.1"]])) is Outcome.APPLIED

    assert book.last_update_id == 106
    bids, asks = book.top(1)
    assert (bids, asks) == ([("100.10", "0.1")], [("100.25", "0.5")])


def test_a_gap_in_update_ids_discards_the_book_and_asks_for_a_snapshot():
    book = synced_book(100)

    assert book.on_diff(diff(103, 104)) is Outcome.RESYNC  # 102 is missing

    assert book.needs_snapshot
    assert not book.synced
    assert book.buffered == 1  # the event after the gap is the start of the next sync


def test_a_repeated_event_after_the_bridge_is_a_gap_too():
    book = synced_book(100)

    assert book.on_diff(diff(100, 101)) is Outcome.RESYNC


def test_the_book_resyncs_after_a_gap():
    book = synced_book(100)
    book.on_diff(diff(103, 104))
    book.on_diff(diff(105, 106, bids=[["100.20", "4"]]))

    assert book.on_snapshot(snapshot(104, BIDS, ASKS)) is Outcome.APPLIED

    assert book.last_update_id == 106
    assert book.top(1)[0] == [("100.20", "4")]


def test_a_zero_quantity_removes_the_level():
    book = synced_book(100)

    book.on_diff(diff(102, 102, bids=[["100.00", "0.00000000"]], asks=[["100.50", "0"]]))

    bids, asks = book.top(10)
    assert ["100.00", "1.0"] not in bids
    assert asks[0] == ("101.00", "2.5")


def test_removing_a_level_the_book_never_had_is_normal():
    book = synced_book(100)

    assert book.on_diff(diff(102, 102, bids=[["42.00", "0"]])) is Outcome.APPLIED
    assert book.top(10)[0] == as_kept(BIDS)


def test_quantities_are_absolute_not_deltas():
    book = synced_book(100)

    book.on_diff(diff(102, 102, bids=[["99.50", "7.25"]]))

    assert ("99.50", "7.25") in book.top(10)[0]


def test_levels_are_keyed_by_value_but_keep_the_exchange_strings():
    book = synced_book(100)

    book.on_diff(diff(102, 102, bids=[["100.0000", "1.50000000"]]))  # the same price as "100.00"

    bids, _asks = book.top(10)
    assert bids[0] == ("100.0000", "1.50000000")
    assert len(bids) == len(BIDS)


def test_top_returns_the_best_levels_first_and_at_most_depth():
    book = synced_book(100)

    bids, asks = book.top(2)

    assert bids == [("100.00", "1.0"), ("99.50", "2.0")]
    assert asks == [("100.50", "1.5"), ("101.00", "2.5")]


def test_an_event_that_crosses_the_book_loses_sync_instead_of_being_published():
    book = synced_book(100)

    assert book.on_diff(diff(102, 102, bids=[["100.50", "1"]])) is Outcome.RESYNC  # bid == best ask

    assert not book.synced
    assert book.needs_snapshot


def test_a_crossed_snapshot_is_never_synced():
    book = OrderBook("BTCUSDT")
    book.on_diff(diff(100, 101))

    assert book.on_snapshot(snapshot(100, [["101.00", "1"]], [["100.00", "1"]])) is Outcome.RESYNC
    assert not book.synced


def test_a_late_snapshot_does_not_overwrite_a_live_book():
    book = synced_book(100)
    book.on_diff(diff(102, 103, bids=[["100.20", "1"]]))

    assert book.on_snapshot(snapshot(90, BIDS, ASKS)) is Outcome.STALE
    assert book.last_update_id == 103


def test_reset_forgets_the_book_and_the_buffer():
    book = synced_book(100)
    book.reset()

    assert book.needs_snapshot
    assert book.buffered == 0


def test_top_of_an_unsynced_book_is_refused():
    book = OrderBook("BTCUSDT")

    try:
        book.top(5)
    except ValueError as error:
        assert "not in sync" in str(error)
    else:
        raise AssertionError("top() of an unsynced book must fail")


def test_the_buffer_keeps_only_the_newest_events():
    book = OrderBook("BTCUSDT", buffer_limit=3)
    for first in range(1, 11):
        book.on_diff(diff(first, first))

    assert book.buffered == 3
    assert book.on_snapshot(snapshot(5, BIDS, ASKS)) is Outcome.RESYNC  # 6 and 7 were pushed out


# Quantities as the exchange may write them, zeros of every width among them; Python's \d also
# matches other scripts' digits, and so do the normaliser's pattern and Decimal.
quantities = st.from_regex(r"\d{1,24}(\.\d{1,24})?", fullmatch=True) | st.from_regex(
    r"0{1,24}(\.0{1,24})?", fullmatch=True
)


@given(quantities)
@example("0")
@example("00.000")
@example("0.00000001")
@example("\u0660.\u0660")  # Arabic-Indic zeros: zero
@example("\u0661")  # Arabic-Indic one
def test_a_level_is_removed_exactly_when_its_quantity_is_zero(quantity):
    payload = sample(DEPTH_UPDATE_SAMPLE, s="BTCUSDT", U=102, u=102, b=[["100.00", quantity]], a=[])
    try:
        update = normalize.parse_frame(raw(payload))
    except NormalizeError:
        assume(False)  # only what the normaliser lets through reaches a book
    book = synced_book(100)  # with a bid of 1.0 at 100.00

    assert book.on_diff(update) is Outcome.APPLIED

    bids, _asks = book.top(10)
    if Decimal(quantity) == 0:
        assert "100.00" not in [price for price, _quantity in bids]
    else:
        assert bids[0] == ("100.00", quantity)
