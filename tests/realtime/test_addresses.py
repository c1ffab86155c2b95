"""realtime.addresses: the client address, with X-Forwarded-For read only through trusted proxies."""

from __future__ import annotations

import pytest

from realtime.addresses import client_address, scope_address

PEER = "10.0.0.5"  # the nearest proxy, or the client itself when there is none


@pytest.mark.parametrize("header", [None, "", "198.51.100.7", "1.1.1.1, 198.51.100.7"])
def test_with_no_trusted_proxy_the_peer_is_the_client_whatever_the_header_says(header):
    assert client_address(PEER, header, 0) == PEER


def test_a_negative_proxy_count_trusts_no_header():
    assert client_address(PEER, "198.51.100.7", -1) == PEER


def test_with_one_trusted_proxy_the_right_most_entry_is_the_client():
    assert client_address(PEER, "198.51.100.7", 1) == "198.51.100.7"


def test_with_two_trusted_proxies_the_second_from_the_right_is_the_client():
    # the client -> proxy A (appends the client) -> proxy B (appends A) -> us (peer: B)
    assert client_address(PEER, "198.51.100.7, 10.0.0.2", 2) == "198.51.100.7"


@pytest.mark.parametrize(("proxies", "client"), [(1, "198.51.100.7"), (2, "203.0.113.9")])
def test_entries_the_client_wrote_left_of_the_trusted_ones_are_ignored(proxies, client):
    spoofed = "6.6.6.6, 7.7.7.7"
    header = {1: f"{spoofed}, 198.51.100.7", 2: f"{spoofed}, 203.0.113.9, 10.0.0.2"}[proxies]

    assert client_address(PEER, header, proxies) == client


def test_a_new_spoofed_value_per_request_still_gives_the_same_address():
    addresses = {client_address(PEER, f"192.0.2.{n}, 198.51.100.7", 1) for n in range(20)}

    assert addresses == {"198.51.100.7"}


def test_fewer_hops_than_trusted_proxies_gives_the_left_most_hop():
    assert client_address(PEER, "198.51.100.7", 2) == "198.51.100.7"
    assert client_address(PEER, "198.51.100.7, 10.0.0.2", 3) == "198.51.100.7"


@pytest.mark.parametrize("header", [None, "", " , ,", ","])
def test_an_absent_or_empty_header_behind_a_proxy_falls_back_to_the_peer(header):
    assert client_address(PEER, header, 1) == PEER


def test_blanks_and_empty_entries_are_not_hops():
    assert client_address(PEER, " 198.51.100.7 ,, 10.0.0.2 ,", 2) == "198.51.100.7"


def test_no_peer_and_no_trusted_proxy_is_an_unknown_address():
    assert client_address(None, "198.51.100.7", 0) is None


def scope(client=(PEER, 51000), *headers: tuple[bytes, bytes]) -> dict:
    return {"type": "websocket", "client": client, "headers": list(headers)}


def test_a_scope_without_a_header_is_its_peer():
    assert scope_address(scope(), 1) == PEER


def test_a_scope_without_a_client_has_no_address():
    assert scope_address({"type": "websocket", "headers": []}, 0) is None
    assert scope_address(scope(None), 0) is None


def test_a_scope_header_is_read_through_the_trusted_proxies():
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.7")]

    assert scope_address(scope((PEER, 1), *headers), 1) == "198.51.100.7"
    assert scope_address(scope((PEER, 1), *headers), 0) == PEER


def test_the_header_name_is_matched_in_any_case():
    assert scope_address(scope((PEER, 1), (b"X-Forwarded-For", b"198.51.100.7")), 1) == "198.51.100.7"


def test_repeated_headers_are_one_list_in_order():
    headers = [(b"x-forwarded-for", b"6.6.6.6"), (b"user-agent", b"x"), (b"x-forwarded-for", b"198.51.100.7, 10.0.0.2")]

    assert scope_address(scope((PEER, 1), *headers), 2) == "198.51.100.7"
    assert scope_address(scope((PEER, 1), *headers), 3) == "6.6.6.6"
