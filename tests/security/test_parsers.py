"""security.parsers: the nesting depth of parsed JSON, and the parser's refusals (no server needed)."""

from __future__ import annotations

import io

import pytest
from rest_framework import exceptions

from security.parsers import MAX_DEPTH, BoundedJSONParser, RequestTooLarge, json_depth


@pytest.mark.parametrize(
    ("value", "depth"), [(1, 0), ("x", 0), ([], 1), ({}, 1), ([[1]], 2), ({"a": [{"b": 1}]}, 3), ([1, [2, [3]]], 3)]
)
def test_json_depth_counts_lists_and_objects(value, depth):
    assert json_depth(value) == depth


def test_json_depth_has_no_recursion_limit():
    value: list = []
    for _ in range(100_000):
        value = [value]
    assert json_depth(value) == 100_001


def parse(body: bytes):
    return BoundedJSONParser().parse(io.BytesIO(body), "application/json", {"encoding": "utf-8"})


def test_ordinary_json_parses():
    assert parse(b'{"symbol": "BTCUSDT", "params": {"a": [1, 2]}}') == {"symbol": "BTCUSDT", "params": {"a": [1, 2]}}


def test_nesting_at_the_limit_parses_and_one_deeper_is_refused():
    assert json_depth(parse(b"[" * MAX_DEPTH + b"]" * MAX_DEPTH)) == MAX_DEPTH
    with pytest.raises(exceptions.ParseError, match="nested deeper"):
        parse(b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1))


def test_unclosed_deep_nesting_is_a_parse_error_not_a_crash():
    with pytest.raises(exceptions.ParseError, match="nested deeper"):
        parse(b"[" * 100_000)


def test_a_body_over_the_limit_is_refused_without_reading_it_all(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    stream = io.BytesIO(b"[" + b"1," * 5000 + b"1]")
    with pytest.raises(RequestTooLarge):
        BoundedJSONParser().parse(stream, "application/json", {"encoding": "utf-8"})
    assert stream.tell() == 1001


@pytest.mark.parametrize("body", [b"NaN", b'{"a": Infinity}', b"{", b"\xff"])
def test_invalid_json_is_a_parse_error(body):
    with pytest.raises(exceptions.ParseError):
        parse(body)
