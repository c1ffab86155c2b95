"""marketdata.checksum: Kraken's WebSocket v2 book checksum over the levels as we send them."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from marketdata.checksum import book_checksum, checksum_text

# Kraken's worked example ("Book checksum (WebSocket v2)", docs.kraken.com/api/docs/guides/spot-ws-book-v2):
# the BTC/USD snapshot's top 10 levels per side and the checksum Kraken documents for them.
KRAKEN_BIDS = [
    ["45283.5", "0.10000000"],
    ["45283.4", "1.54582015"],
    ["45282.1", "0.10000000"],
    ["45281.0", "0.10000000"],
    ["45280.3", "1.54592586"],
    ["45279.0", "0.07990000"],
    ["45277.6", "0.03310103"],
    ["45277.5", "0.30000000"],
    ["45277.3", "1.54602737"],
    ["45276.6", "0.15445238"],
]
KRAKEN_ASKS = [
    ["45285.2", "0.00100000"],
    ["45286.4", "1.54571953"],
    ["45286.6", "1.54571109"],
    ["45289.6", "1.54560911"],
    ["45290.2", "0.15890660"],
    ["45291.8", "1.54553491"],
    ["45294.7", "0.04454749"],
    ["45296.1", "0.35380000"],
    ["45297.5", "0.09945542"],
    ["45299.5", "0.18772827"],
]


def test_kraken_documented_example():
    assert book_checksum(KRAKEN_BIDS, KRAKEN_ASKS) == 3310070434


def test_a_small_book_written_out_by_hand():
    bids = [["0.0500", "12.5"], ["0.0499", "0.00100"]]
    asks = [["0.0501", "3"], ["0.0502", "0.5"]]
    # asks best first, then bids best first; "." removed, leading zeros stripped
    expected = "501" + "3" + "502" + "5" + "500" + "125" + "499" + "100"

    assert checksum_text(bids, asks) == expected
    assert book_checksum(bids, asks) == zlib.crc32(expected.encode()) == 2689702818


def test_only_the_top_ten_levels_of_each_side_count():
    bids = [[f"{100 - i}.0", "1"] for i in range(15)]
    asks = [[f"{101 + i}.0", "1"] for i in range(15)]

    assert book_checksum(bids, asks) == book_checksum(bids[:10], asks[:10])
    assert book_checksum(bids, asks) != book_checksum(bids[:9], asks[:10])


def test_the_checksum_is_unsigned():
    assert book_checksum(KRAKEN_BIDS, KRAKEN_ASKS) > 2**31  # a signed CRC32 would be negative here


def test_a_changed_quantity_changes_the_checksum():
    changed = [list(level) for level in KRAKEN_BIDS]
    changed[9][1] = "0.15445239"

    assert book_checksum(changed, KRAKEN_ASKS) != book_checksum(KRAKEN_BIDS, KRAKEN_ASKS)


def test_an_empty_book_has_the_checksum_of_the_empty_string():
    assert book_checksum([], []) == 0


def test_levels_must_be_strings_as_sent():
    with pytest.raises(TypeError):
        book_checksum([[45283.5, "1"]], [])


def documented_text(bids, asks) -> str:
    """The definition as the contract words it, one value at a time: "." removed, leading zeros stripped."""
    values = [value for price, quantity in [*asks[:10], *bids[:10]] for value in (price, quantity)]
    return "".join(value.replace(".", "").lstrip("0") for value in values)


# Decimal strings with leading zeros, zero values and odd forms ("00.0", "0.", ".5"), and any text at all.
values = st.text(alphabet="0123456789.", max_size=12) | st.text(max_size=6)
sides = st.lists(st.tuples(values, values) | st.lists(values, min_size=2, max_size=2), max_size=14)


@given(bids=sides, asks=sides)
def test_the_text_is_the_documented_definition_for_any_levels(bids, asks):
    assert checksum_text(bids, asks) == documented_text(bids, asks)
