"""realtime.script_args: many values in one script argument, cut apart again by the script's Lua."""

from __future__ import annotations

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from realtime import script_args
from tests.integration.harness import claimed_redis_url

# Returns what the script cut apart, as Redis returns a Lua list of strings.
ECHO = script_args.LUA_SPLIT + "return split(ARGV[1], ARGV[2])"


@pytest.fixture(scope="module")
def client():
    with claimed_redis_url("the script argument tests") as url:
        yield redis.Redis.from_url(url)


def test_values_come_apart_as_they_went_in(client):
    values = [b"", "plain", "comma,and\nnewline", "non-ASCII \u00e9\u20ac", b"\x00\xff\r\n binary", "12,3"]

    sizes, joined = script_args.pack(values)

    assert client.eval(ECHO, 0, sizes, joined) == [v.encode() if isinstance(v, str) else v for v in values]


def test_no_values_are_two_empty_arguments(client):
    assert script_args.pack([]) == ("", b"")
    assert client.eval(ECHO, 0, "", b"") == []


@settings(max_examples=50, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(values=st.lists(st.binary(max_size=40) | st.text(max_size=20), max_size=30))
def test_any_values_survive_the_trip(client, values):
    assert client.eval(ECHO, 0, *script_args.pack(values)) == [v.encode() if isinstance(v, str) else v for v in values]
