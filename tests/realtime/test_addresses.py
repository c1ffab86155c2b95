"""realtime.addresses: which address a request comes from, with and without trusted proxies."""

from __future__ import annotations

import pytest

from realtime.addresses import client_address, headers_client_address, scope_client_address

PEER = "10.0.0.2"


@pytest.mark.parametrize("forwarded", [None, "", "203.0.113.9", "1.1.1.1, 2.2.2.2"])
def test_without_trusted_proxies_the_header_is_ignored(forwarded):
    assert client_address(forwarded, PEER, 0) == PEER


def test_one_trusted_proxy_means_the_last_entry():
    assert client_address("6.6.6.6, 203.0.113.9", PEER, 1) == "203.0.113.9"


def test_two_trusted_proxies_mean_the_second_entry_from_the_right():
    assert client_address("6.6.6.6, 203.0.113.9, 10.0.0.7", PEER, 2) == "203.0.113.9"


def test_fewer_entries_than_proxies_take_the_leftmost_which_a_proxy_wrote():
    assert client_address("203.0.113.9", PEER, 3) == "203.0.113.9"


@pytest.mark.parametrize("forwarded", ["not-an-address", "6.6.6.6, ", " , ", "6.6.6.6, 203.0.113.9:443"])
def test_an_entry_that_is_no_address_falls_back_to_the_peer(forwarded):
    assert client_address(forwarded, PEER, 1) == PEER


def test_ipv6_entries_are_addresses():
    assert client_address("2001:db8::1", PEER, 1) == "2001:db8::1"


def test_an_unknown_peer_is_empty():
    assert client_address(None, None, 0) == ""


def test_an_asgi_scope_joins_repeated_headers_and_reads_the_peer(settings):
    settings.APP = __import__("dataclasses").replace(settings.APP, trusted_proxy_count=1)
    scope = {
        "client": [PEER, 5555],
        "headers": [(b"x-forwarded-for", b"6.6.6.6"), (b"X-Forwarded-For", b"203.0.113.9"), (b"host", b"x")],
    }

    assert scope_client_address(scope) == "203.0.113.9"
    assert scope_client_address({"client": None, "headers": []}) == ""


def test_headers_are_read_whatever_their_case_and_repeated_ones_join_in_order():
    headers = [(b"X-Forwarded-For", b"6.6.6.6, 203.0.113.9"), (b"x-forwarded-for", b"10.0.0.7"), (b"host", b"x")]

    assert headers_client_address(headers, PEER, 2) == "203.0.113.9"
    assert headers_client_address(headers, PEER, 0) == PEER
    assert headers_client_address([], PEER, 1) == PEER


def test_drf_throttles_and_the_lockout_key_on_the_client_address_not_the_raw_header(settings):
    """DRF alone would key on the whole X-Forwarded-For value: a new value, a new bucket."""
    from rest_framework.test import APIRequestFactory

    from realtime.addresses import request_client_address
    from security.throttling import LoginThrottle, UserThrottle

    requests = [APIRequestFactory().post("/api/token/", HTTP_X_FORWARDED_FOR=f"6.6.6.{n}") for n in range(3)]
    for request in requests:
        request.META["REMOTE_ADDR"] = PEER

    assert {UserThrottle().get_ident(r) for r in requests} == {PEER}
    assert {LoginThrottle().get_cache_key(r, None) for r in requests} == {f"throttle_login_{PEER}"}
    assert {request_client_address(r) for r in requests} == {PEER}  # what django-axes is given
