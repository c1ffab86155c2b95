"""Binance frames in, our messages out. Pure: no I/O, no clock, no Django.

Accepts frames from the combined endpoint (`{"stream": "btcusdt@ticker", "data": {...}}`), from the
raw `/ws` endpoint (the payload itself, with an `"e"` event type), replies to SUBSCRIBE and friends
(`{"result": null, "id": 1}`), error replies and the `serverShutdown` connection event.

Values stay the exchange's exact strings: they are checked to be decimal strings, never parsed into
floats, so what a client sees is what the exchange sent. Anything not shaped as documented raises
the one NormalizeError.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

import orjson

from marketdata.exceptions import NormalizeError
from realtime import protocol

_DECIMAL = r"\d{1,24}(?:\.\d{1,24})?"
_UNSIGNED_DECIMAL = re.compile(rf"^{_DECIMAL}$")
# An event time past 9999-12-31T23:59:59.999Z has no ISO 8601 timestamp of ours (datetime stops there).
_LAST_MILLIS = 253_402_300_799_999
# Unsigned decimal strings separated by single spaces (the values of a diff's levels, joined).
_UNSIGNED_DECIMALS = re.compile(rf"{_DECIMAL}(?: {_DECIMAL})*")
_SIGNED_DECIMAL = re.compile(rf"^-?{_DECIMAL}$")
_STREAM_NAME = re.compile(r"^([a-z0-9]+)@[A-Za-z0-9_@]+$")
EXCERPT_CHARS = 120


# --- what a frame can be -------------------------------------------------------------------------


# The two events of nearly every frame are NamedTuples: a frozen dataclass's __init__ cost more per
# frame than the tuple (thousands a second).


class MarketMessage(NamedTuple):
    """A ticker or trade message, already in our wire shape (built by realtime.protocol)."""

    message: dict

    @property
    def kind(self) -> str:
        return self.message["type"]

    @property
    def symbol(self) -> str:
        return self.message["symbol"]


class DepthDiff(NamedTuple):
    """One `depthUpdate` event: absolute quantities for the update ids U..u."""

    symbol: str
    first_update_id: int
    final_update_id: int
    bids: list[list[str]]
    asks: list[list[str]]
    event_time: int


@dataclass(frozen=True)
class DepthSnapshot:
    """The REST `/api/v3/depth` body."""

    last_update_id: int
    bids: list[list[str]]
    asks: list[list[str]]


@dataclass(frozen=True)
class SubscriptionResult:
    """The reply to SUBSCRIBE / UNSUBSCRIBE (result None) or LIST_SUBSCRIPTIONS (a list)."""

    id: int | str | None
    result: Any


@dataclass(frozen=True)
class ExchangeError:
    """An error reply, e.g. `{"code": 2, "msg": "Invalid request: ...", "id": 1}`."""

    code: int | None
    message: str
    id: int | str | None = None


@dataclass(frozen=True)
class ServerShutdown:
    """The exchange is about to restart this server: reconnect now, before it drops us."""

    event_time: int | None


@dataclass(frozen=True)
class Unsupported:
    """A well formed event of a kind we do not use (aggTrade, kline, ...): skipped quietly."""

    event_type: str


Event = MarketMessage | DepthDiff | SubscriptionResult | ExchangeError | ServerShutdown | Unsupported


# --- entry points --------------------------------------------------------------------------------


def parse_frame(raw: str | bytes | None) -> Event:
    """One text frame from the stream endpoint -> an Event, or NormalizeError."""
    data = _loads(raw)
    if "stream" in data and "data" in data:
        return _combined(data)
    if "result" in data and "id" in data:
        return SubscriptionResult(id=_request_id(data.get("id")), result=data["result"])
    if "e" not in data:
        return _control(data)
    return _payload(data)


def depth_snapshot(body: str | bytes | dict) -> DepthSnapshot:
    """The REST depth snapshot body -> DepthSnapshot, or NormalizeError."""
    data = body if isinstance(body, dict) else _loads(body)
    return DepthSnapshot(
        last_update_id=_int(data, "lastUpdateId"),
        bids=_levels(data, "bids"),
        asks=_levels(data, "asks"),
    )


def ticker(payload: dict) -> dict:
    """A `24hrTicker` payload -> our ticker message."""
    return protocol.ticker(
        symbol=_symbol(payload),
        price=_decimal(payload, "c"),
        price_change=_decimal(payload, "p", signed=True),
        price_change_percent=_decimal(payload, "P", signed=True),
        high_price=_decimal(payload, "h"),
        low_price=_decimal(payload, "l"),
        volume=_decimal(payload, "v"),
        timestamp=protocol.iso_from_millis(_millis(payload, "E")),
    )


def trade(payload: dict) -> dict:
    """A `trade` payload -> our trade message; the taker sold when the buyer was the maker."""
    # Two thirds of the frames: a well-formed payload is checked in one expression and built in one
    # step (half the CPU of the field-by-field checks, measured); anything else takes those checks,
    # which say what is wrong. Both give the same message or refusal (tests/marketdata).
    try:
        symbol, price, quantity = payload["s"], payload["p"], payload["q"]
        maker, millis, trade_id = payload["m"], payload["E"], payload["t"]
    except KeyError:
        return checked_trade(payload)
    if (
        type(symbol) is str
        and type(price) is str
        and type(quantity) is str
        and type(maker) is bool
        and type(millis) is int
        and type(trade_id) is int
        and 0 <= millis <= _LAST_MILLIS
        and trade_id >= 0
        and protocol.SYMBOL_PATTERN.fullmatch(symbol)
        and _UNSIGNED_DECIMAL.fullmatch(price)
        and _UNSIGNED_DECIMAL.fullmatch(quantity)
    ):
        side = "sell" if maker else "buy"
        return protocol.trade_of(symbol, price, quantity, side, trade_id, protocol.iso_from_millis(millis))
    return checked_trade(payload)


def checked_trade(payload: dict) -> dict:
    """`trade`, field by field: a NormalizeError names the first field that is wrong."""
    return protocol.trade(
        symbol=_symbol(payload),
        price=_decimal(payload, "p"),
        quantity=_decimal(payload, "q"),
        side="sell" if _bool(payload, "m") else "buy",
        timestamp=protocol.iso_from_millis(_millis(payload, "E")),
        trade_id=_int(payload, "t"),
    )


def depth_diff(payload: dict) -> DepthDiff:
    """A `depthUpdate` payload -> DepthDiff."""
    first, final = _int(payload, "U"), _int(payload, "u")
    if first > final:
        raise NormalizeError(f"depthUpdate has U={first} after u={final}")
    return DepthDiff(
        symbol=_symbol(payload),
        first_update_id=first,
        final_update_id=final,
        bids=_levels(payload, "b"),
        asks=_levels(payload, "a"),
        event_time=_millis(payload, "E"),
    )


def excerpt(raw: str | bytes | None, limit: int = EXCERPT_CHARS) -> str:
    """A short, printable piece of a frame for a log line (frames carry no secrets, but keep logs small)."""
    if raw is None:
        return "<none>"
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes | bytearray) else str(raw)
    text = text.replace("\n", " ")
    return text if len(text) <= limit else text[:limit] + "..."


# --- frame shapes --------------------------------------------------------------------------------


def _loads(raw: str | bytes | None) -> dict:
    if raw is None or (isinstance(raw, bytes | bytearray) and not raw):
        raise NormalizeError("empty frame")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise NormalizeError("frame is not JSON") from None
    if not isinstance(data, dict):
        raise NormalizeError(f"frame is a JSON {type(data).__name__}, not an object")
    return data


def _combined(data: dict) -> Event:
    stream, payload = data["stream"], data["data"]
    if not isinstance(stream, str) or not isinstance(payload, dict):
        raise NormalizeError("combined frame needs a string 'stream' and an object 'data'")
    event = _payload(payload)
    match = _STREAM_NAME.fullmatch(stream)
    symbol = getattr(event, "symbol", None)
    # A payload filed under another symbol's stream would be published to the wrong group.
    if symbol is not None and (match is None or match.group(1) != symbol.lower()):
        raise NormalizeError(f"stream {stream!r} carries a payload for {symbol}")
    return event


_PAYLOADS: dict[str, Callable[[dict], Event]] = {
    "24hrTicker": lambda p: MarketMessage(ticker(p)),
    "trade": lambda p: MarketMessage(trade(p)),
    "depthUpdate": depth_diff,
    "serverShutdown": lambda p: ServerShutdown(event_time=_optional_int(p, "E")),
}


def _payload(payload: dict) -> Event:
    event_type = payload.get("e")
    if not isinstance(event_type, str):
        raise NormalizeError("payload has no string event type 'e'")
    build = _PAYLOADS.get(event_type)
    if build is None:
        return Unsupported(event_type)
    return build(payload)


def _control(data: dict) -> Event:
    """Frames without an event type: error replies and the wrapped connection event."""
    event = data.get("event")
    if isinstance(event, dict) and event.get("e") == "serverShutdown":
        return ServerShutdown(event_time=_optional_int(event, "E"))
    error = data.get("error") if isinstance(data.get("error"), dict) else data
    if "msg" in error:
        code = error.get("code")
        return ExchangeError(
            code=code if isinstance(code, int) and not isinstance(code, bool) else None,
            message=str(error["msg"])[:500],
            id=_request_id(data.get("id")),
        )
    raise NormalizeError(f"unrecognised frame with keys {sorted(data)[:8]}")


# --- field checks --------------------------------------------------------------------------------


def _field(payload: dict, key: str) -> Any:
    try:
        return payload[key]
    except KeyError:
        raise NormalizeError(f"field {key!r} is missing") from None


def _decimal(payload: dict, key: str, signed: bool = False) -> str:
    return _decimal_value(_field(payload, key), key, _SIGNED_DECIMAL if signed else _UNSIGNED_DECIMAL)


def _decimal_value(value: Any, name: str, pattern: re.Pattern = _UNSIGNED_DECIMAL) -> str:
    # Only strings: a JSON number would already have been through a float.
    if not isinstance(value, str) or not pattern.fullmatch(value):
        raise NormalizeError(f"field {name!r} is not a decimal string: {excerpt(repr(value), 40)}")
    return value


def _int(payload: dict, key: str) -> int:
    value = _field(payload, key)
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise NormalizeError(f"field {key!r} is not a non-negative integer")
    return value


def _millis(payload: dict, key: str) -> int:
    """An event time in milliseconds that our timestamps can show."""
    value = _int(payload, key)
    if value > _LAST_MILLIS:
        raise NormalizeError(f"field {key!r} is a time after the year 9999")
    return value


def _optional_int(payload: dict, key: str) -> int | None:
    return _int(payload, key) if key in payload else None


def _bool(payload: dict, key: str) -> bool:
    value = _field(payload, key)
    if not isinstance(value, bool):
        raise NormalizeError(f"field {key!r} is not a boolean")
    return value


def _symbol(payload: dict) -> str:
    value = _field(payload, "s")
    if not isinstance(value, str) or not protocol.SYMBOL_PATTERN.fullmatch(value):
        raise NormalizeError(f"field 's' is not a symbol: {excerpt(repr(value), 40)}")
    return value


def _levels(payload: dict, key: str) -> list[list[str]]:
    value = _field(payload, key)
    if not isinstance(value, list):
        raise NormalizeError(f"field {key!r} is not a list of [price, quantity]")
    # Checked in place and returned as parsed: a diff carries many levels, and copying each into a
    # new list (through a dict per value) cost more than the checks. The values are checked all at
    # once (one regular expression over them joined), not one call each; only a diff that fails is
    # walked value by value, for an error that names the value.
    for level in value:
        if type(level) is not list or len(level) != 2:
            raise NormalizeError(f"field {key!r} holds a level that is not [price, quantity]")
    if value and not _all_decimal_strings(value):
        for price, quantity in value:
            _decimal_value(price, "price")
            _decimal_value(quantity, "quantity")
    return value


def _all_decimal_strings(levels: list[list[Any]]) -> bool:
    """Every price and quantity is an unsigned decimal string (as `_decimal_value` checks one)."""
    try:
        joined = " ".join([text for level in levels for text in level])
    except TypeError:  # a value that is not a string
        return False
    # A value holding the separator itself would pass as two: the count of separators tells.
    return joined.count(" ") == 2 * len(levels) - 1 and _UNSIGNED_DECIMALS.fullmatch(joined) is not None


def _request_id(value: Any) -> int | str | None:
    if value is None or isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    raise NormalizeError("reply id is neither an integer, a string nor null")


@dataclass(frozen=True)
class SymbolInfo:
    """One symbol of /api/v3/exchangeInfo: what the platform needs to trade it."""

    name: str
    status: str
    base_asset: str
    quote_asset: str
    step_size: str
    tick_size: str
    min_notional: str

    @property
    def trading(self) -> bool:
        return self.status == "TRADING"


def exchange_symbols(body: str | bytes | dict) -> list[SymbolInfo]:
    """The symbols of an exchangeInfo answer; a malformed one raises NormalizeError."""
    data = body if isinstance(body, dict) else _loads(body)
    symbols = data.get("symbols")
    if not isinstance(symbols, list):
        raise NormalizeError("exchangeInfo without a 'symbols' list")
    return [_symbol_info(entry) for entry in symbols]


def _symbol_info(entry: Any) -> SymbolInfo:
    if not isinstance(entry, dict):
        raise NormalizeError("exchangeInfo symbol is not an object")
    filters = {f.get("filterType"): f for f in entry.get("filters", []) if isinstance(f, dict)}
    notional = filters.get("NOTIONAL") or filters.get("MIN_NOTIONAL") or {}
    return SymbolInfo(
        name=_symbol({"s": entry.get("symbol")}),
        status=str(_field(entry, "status")),
        base_asset=str(_field(entry, "baseAsset")),
        quote_asset=str(_field(entry, "quoteAsset")),
        step_size=_decimal(filters.get("LOT_SIZE", {"stepSize": "0.00000001"}), "stepSize"),
        tick_size=_decimal(filters.get("PRICE_FILTER", {"tickSize": "0.00000001"}), "tickSize"),
        min_notional=_decimal({"minNotional": notional.get("minNotional", "0")}, "minNotional"),
    )
