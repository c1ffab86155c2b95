"""Binance payloads for tests: the documented samples, and small builders for variations.

The samples are the ones in Binance's "WebSocket Streams" and REST documentation (spot), so the
normaliser is tested against what the exchange says it sends, not against what we think it sends.
"""

from __future__ import annotations

import copy

import orjson

from marketdata.normalize import DepthDiff, DepthSnapshot

# <symbol>@ticker
TICKER_SAMPLE = {
    "e": "24hrTicker",
    "E": 1672515782136,
    "s": "BNBBTC",
    "p": "0.0015",
    "P": "250.00",
    "w": "0.0018",
    "x": "0.0009",
    "c": "0.0025",
    "Q": "10",
    "b": "0.0024",
    "B": "10",
    "a": "0.0026",
    "A": "100",
    "o": "0.0010",
    "h": "0.0025",
    "l": "0.0010",
    "v": "10000",
    "q": "18",
    "O": 0,
    "C": 86400000,
    "F": 0,
    "L": 18150,
    "n": 18151,
}

# <symbol>@trade
TRADE_SAMPLE = {
    "e": "trade",
    "E": 1672515782136,
    "s": "BNBBTC",
    "t": 12345,
    "p": "0.001",
    "q": "100",
    "b": 88,
    "a": 50,
    "T": 1672515782136,
    "m": True,
    "M": True,
}

# <symbol>@depth and <symbol>@depth@100ms
DEPTH_UPDATE_SAMPLE = {
    "e": "depthUpdate",
    "E": 1672515782136,
    "s": "BNBBTC",
    "U": 157,
    "u": 160,
    "b": [["0.0024", "10"]],
    "a": [["0.0026", "100"]],
}

# GET /api/v3/depth
REST_DEPTH_SAMPLE = {
    "lastUpdateId": 1027024,
    "bids": [["4.00000000", "431.00000000"]],
    "asks": [["4.00000200", "12.00000000"]],
}

SUBSCRIBE_REPLY_SAMPLE = {"result": None, "id": 1}
LIST_SUBSCRIPTIONS_REPLY_SAMPLE = {"result": ["btcusdt@aggTrade"], "id": 3}
ERROR_REPLY_SAMPLE = {"code": 2, "msg": "Invalid request: missing field `method` at line 1 column 73"}
# The connection event, as the spot docs show it.
SERVER_SHUTDOWN_SAMPLE = {"event": {"e": "serverShutdown", "E": 1770123456789}}


def sample(base: dict, **changes) -> dict:
    """A deep copy of a sample with some fields replaced (None removes a field)."""
    payload = copy.deepcopy(base)
    for key, value in changes.items():
        if value is None:
            payload.pop(key, None)
        else:
            payload[key] = value
    return payload


def combined(stream: str, payload: dict) -> bytes:
    """The frame the combined endpoint sends."""
    return orjson.dumps({"stream": stream, "data": payload})


def raw(payload: dict) -> bytes:
    return orjson.dumps(payload)


def diff(
    first: int,
    final: int,
    bids: list[list[str]] | None = None,
    asks: list[list[str]] | None = None,
    symbol: str = "BTCUSDT",
) -> DepthDiff:
    return DepthDiff(
        symbol=symbol,
        first_update_id=first,
        final_update_id=final,
        bids=bids or [],
        asks=asks or [],
        event_time=1672515782136,
    )


def snapshot(last_update_id: int, bids: list[list[str]], asks: list[list[str]]) -> DepthSnapshot:
    return DepthSnapshot(last_update_id=last_update_id, bids=bids, asks=asks)
