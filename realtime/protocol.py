"""The wire format, both ways: parse and validate client frames, build server frames.

Pure: no I/O, no Django, no clock except where a caller passes none. This is the only module that
knows the JSON shapes on the sockets; everything else calls these builders.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any

import orjson

# --- codes --------------------------------------------------------------------------------------


class Code:
    AUTH_FAILED = 4001  # no token, invalid or expired token, refresh token used as access
    USER_INACTIVE = 4002  # user missing or inactive
    TOO_MANY_CONNECTIONS = 4003  # over WS_MAX_CONNECTIONS_PER_USER: the newest is refused
    INVALID_MESSAGE = 4004  # bad JSON, unknown type, wrong field types, unknown channel/symbol
    SLOW_CONSUMER = 4008  # the client did not read; trading events would have been lost
    RATE_LIMITED = 4029  # flooding: error frames first, then a close if it goes on
    INTERNAL = 4500  # the server failed a request (database or Redis unavailable); retry


# --- what a client may ask for -------------------------------------------------------------------


class Endpoint(StrEnum):
    TRADING = "trading"
    MARKET = "market"


class Stream(StrEnum):
    TICKER = "ticker"
    TRADES = "trades"
    ORDERBOOK = "orderbook"


# The message type each market stream carries, and back.
MESSAGE_TYPE_OF_STREAM = {Stream.TICKER: "ticker", Stream.TRADES: "trade", Stream.ORDERBOOK: "orderbook"}
STREAM_OF_MESSAGE_TYPE = {kind: stream for stream, kind in MESSAGE_TYPE_OF_STREAM.items()}
# Streams that carry state (the newest replaces the older): conflated under pressure, and sent as a
# snapshot to a new subscriber. Trades are events and are neither.
STATE_STREAMS = frozenset({Stream.TICKER, Stream.ORDERBOOK})


TRADING_CHANNELS = ("orders", "risk_alerts", "bot_status", "portfolio")
# Channels with a current state, sent to a new subscriber; risk alerts are events only.
SNAPSHOT_CHANNELS = frozenset({"orders", "bot_status", "portfolio"})
SYMBOL_PATTERN = re.compile(r"[A-Z0-9]{2,20}")

# type -> (endpoint set, field name, stream or None, subscribe?)
_LIST_REQUESTS: dict[str, tuple[frozenset[Endpoint], str, Stream | None, bool]] = {
    "subscribe": (frozenset({Endpoint.TRADING}), "channels", None, True),
    "unsubscribe": (frozenset({Endpoint.TRADING}), "channels", None, False),
    "subscribe_symbol": (frozenset({Endpoint.TRADING}), "symbols", Stream.TICKER, True),
    "unsubscribe_symbol": (frozenset({Endpoint.TRADING}), "symbols", Stream.TICKER, False),
    "subscribe_ticker": (frozenset({Endpoint.MARKET}), "symbols", Stream.TICKER, True),
    "unsubscribe_ticker": (frozenset({Endpoint.MARKET}), "symbols", Stream.TICKER, False),
    "subscribe_trades": (frozenset({Endpoint.MARKET}), "symbols", Stream.TRADES, True),
    "unsubscribe_trades": (frozenset({Endpoint.MARKET}), "symbols", Stream.TRADES, False),
    "subscribe_orderbook": (frozenset({Endpoint.MARKET}), "symbols", Stream.ORDERBOOK, True),
    "unsubscribe_orderbook": (frozenset({Endpoint.MARKET}), "symbols", Stream.ORDERBOOK, False),
}


def request_types(endpoint: Endpoint) -> tuple[str, ...]:
    """The request types an endpoint accepts, for error messages and docs."""
    listed = [name for name, (endpoints, *_rest) in _LIST_REQUESTS.items() if endpoint in endpoints]
    return (*listed, "ping")


class ProtocolError(Exception):
    """A client frame we refuse; `code` and `message` go back to the client as an error frame."""

    def __init__(self, message: str, code: int = Code.INVALID_MESSAGE, **details: Any):
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details


@dataclass(frozen=True)
class Ping:
    type: str = "ping"


@dataclass(frozen=True)
class ChannelRequest:
    """subscribe / unsubscribe on /ws/trading: per-user channels."""

    type: str
    subscribe: bool
    channels: tuple[str, ...]


@dataclass(frozen=True)
class SymbolRequest:
    """subscribe_symbol and the market subscribe_* / unsubscribe_* requests."""

    type: str
    subscribe: bool
    stream: Stream
    symbols: tuple[str, ...]


Request = Ping | ChannelRequest | SymbolRequest


def parse(raw: str | bytes | None, endpoint: Endpoint, max_items: int = 50) -> Request:
    """Parse one client frame for an endpoint, or raise ProtocolError saying what is wrong."""
    if raw is None:
        raise ProtocolError("Binary frames are not accepted: send JSON text")
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise ProtocolError("Malformed JSON: send one JSON object per message") from None
    if not isinstance(data, dict):
        raise ProtocolError("A message must be a JSON object with a 'type'")
    kind = data.get("type")
    if not isinstance(kind, str):
        raise ProtocolError("Field 'type' is required and must be a string")
    if kind == "ping":
        return Ping()
    spec = _LIST_REQUESTS.get(kind)
    if spec is None or endpoint not in spec[0]:
        allowed = ", ".join(request_types(endpoint))
        raise ProtocolError(f"Unknown message type {kind!r}; this endpoint accepts: {allowed}")
    _endpoints, field_name, stream, subscribe = spec
    items = _string_list(data.get(field_name), field_name, max_items)
    if stream is None:
        return ChannelRequest(type=kind, subscribe=subscribe, channels=_known_channels(items))
    return SymbolRequest(type=kind, subscribe=subscribe, stream=stream, symbols=_symbols(items))


def _string_list(value: Any, field_name: str, max_items: int) -> tuple[str, ...]:
    if not isinstance(value, list) or not value:
        raise ProtocolError(f"Field {field_name!r} must be a non-empty list of strings")
    if len(value) > max_items:
        raise ProtocolError(f"Field {field_name!r} lists {len(value)} items; at most {max_items} per request")
    if not all(isinstance(item, str) for item in value):
        raise ProtocolError(f"Field {field_name!r} must contain only strings")
    return tuple(dict.fromkeys(value))  # de-duplicated, order kept


def _known_channels(channels: tuple[str, ...]) -> tuple[str, ...]:
    unknown = [c for c in channels if c not in TRADING_CHANNELS]
    if unknown:
        raise ProtocolError(
            f"Unknown channel(s): {', '.join(unknown)}; available: {', '.join(TRADING_CHANNELS)}",
            invalid=unknown,
        )
    return channels


def _symbols(symbols: tuple[str, ...]) -> tuple[str, ...]:
    normalised = tuple(dict.fromkeys(s.strip().upper() for s in symbols))
    malformed = [s for s in normalised if not SYMBOL_PATTERN.fullmatch(s)]
    if malformed:
        raise ProtocolError(f"Malformed symbol(s): {', '.join(malformed)}", invalid=malformed)
    return normalised


def unknown_symbols_error(unknown: list[str] | tuple[str, ...]) -> ProtocolError:
    """The error for symbols that are well formed but not enabled on this platform."""
    return ProtocolError(f"Unknown or disabled symbol(s): {', '.join(unknown)}", invalid=list(unknown))


# --- server frames ------------------------------------------------------------------------------


def now_iso() -> str:
    return iso_timestamp(datetime.now(UTC))


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_from_millis(millis: int) -> str:
    """An exchange event time (ms since the epoch) as our timestamp."""
    seconds, ms = divmod(int(millis), 1000)
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms:03d}Z"


def decimal_str(value: Decimal | str | int | None) -> str | None:
    """A Decimal as a plain string (no exponent, no trailing zeros); strings pass through unchanged."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float | bool):
        raise TypeError(f"money and prices are Decimal or str, never {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    number = number.normalize()
    text = format(number, "f")
    return "0" if text in {"-0", ""} else text


def encode(message: dict) -> str:
    return orjson.dumps(message).decode()


_RESERVED = frozenset({"type", "timestamp"})


def _frame(kind: str, timestamp: str | None, **fields: Any) -> dict:
    clash = _RESERVED.intersection(fields)
    if clash:  # e.g. an order's own `type`: send it as `order_type`, never over the frame's
        raise ValueError(f"extra field(s) {sorted(clash)} would overwrite the frame's own")
    return {"type": kind, **fields, "timestamp": timestamp or now_iso()}


def error(code: int, message: str, **details: Any) -> dict:
    return _frame("error", None, code=code, message=message, **details)


def error_from(exc: ProtocolError) -> dict:
    return error(exc.code, exc.message, **exc.details)


def pong() -> dict:
    return _frame("pong", None)


def heartbeat() -> dict:
    return _frame("heartbeat", None)


def connected(endpoint: Endpoint, **details: Any) -> dict:
    return _frame("connection_established", None, endpoint=str(endpoint), **details)


def channels_ack(subscribe: bool, channels: tuple[str, ...] | list[str]) -> dict:
    return _frame("subscribed" if subscribe else "unsubscribed", None, channels=list(channels))


def symbols_ack(request: SymbolRequest) -> dict:
    """subscribe_symbol is acked without a stream (as the contract says); market requests name it."""
    kind = "subscribed" if request.subscribe else "unsubscribed"
    if request.type.endswith("_symbol"):
        return _frame(kind, None, symbols=list(request.symbols))
    return _frame(kind, None, stream=str(request.stream), symbols=list(request.symbols))


def ticker(
    *,
    symbol: str,
    price: str,
    price_change: str,
    price_change_percent: str,
    high_price: str,
    low_price: str,
    volume: str,
    timestamp: str,
    **extra: Any,
) -> dict:
    return _frame(
        "ticker",
        timestamp,
        symbol=symbol,
        price=price,
        price_change=price_change,
        price_change_percent=price_change_percent,
        high_price=high_price,
        low_price=low_price,
        volume=volume,
        **extra,
    )


def trade(*, symbol: str, price: str, quantity: str, side: str, timestamp: str, **extra: Any) -> dict:
    if side not in {"buy", "sell"}:
        raise ValueError(f"side must be buy or sell, not {side!r}")
    return _frame("trade", timestamp, symbol=symbol, price=price, quantity=quantity, side=side, **extra)


def orderbook(
    *,
    symbol: str,
    bids: list[list[str]],
    asks: list[list[str]],
    timestamp: str,
    **extra: Any,
) -> dict:
    return _frame("orderbook", timestamp, symbol=symbol, bids=bids, asks=asks, **extra)


def order_update(
    *,
    order_id: int | str,
    symbol: str,
    side: str,
    status: str,
    filled_quantity: Decimal | str,
    remaining_quantity: Decimal | str,
    average_price: Decimal | str | None,
    timestamp: str | None = None,
    **extra: Any,
) -> dict:
    return _frame(
        "order_update",
        timestamp,
        order_id=str(order_id),
        symbol=symbol,
        side=side,
        status=status,
        filled_quantity=decimal_str(filled_quantity),
        remaining_quantity=decimal_str(remaining_quantity),
        average_price=decimal_str(average_price),
        **_decimals(extra),
    )


def risk_alert(
    *,
    alert_type: str,
    severity: str,
    message: str,
    limit_value: Decimal | str,
    current_value: Decimal | str,
    timestamp: str | None = None,
    **extra: Any,
) -> dict:
    return _frame(
        "risk_alert",
        timestamp,
        alert_type=alert_type,
        severity=severity,
        message=message,
        limit_value=decimal_str(limit_value),
        current_value=decimal_str(current_value),
        **_decimals(extra),
    )


def bot_status(
    *,
    bot_id: int | str,
    name: str,
    status: str,
    performance: dict,
    timestamp: str | None = None,
    **extra: Any,
) -> dict:
    return _frame(
        "bot_status",
        timestamp,
        bot_id=str(bot_id),
        name=name,
        status=status,
        performance=_decimals(performance),
        **_decimals(extra),
    )


def portfolio(
    *,
    total_value: Decimal | str,
    positions: list[dict],
    timestamp: str | None = None,
    **extra: Any,
) -> dict:
    return _frame(
        "portfolio",
        timestamp,
        total_value=decimal_str(total_value),
        positions=[_decimals(p) for p in positions],
        **_decimals(extra),
    )


def _decimals(fields: dict) -> dict:
    """Decimals inside a trading payload become strings (floats are refused); everything else is kept."""
    return {k: decimal_str(v) if isinstance(v, Decimal | float) else v for k, v in fields.items()}


# --- messages between our processes (channel-layer events) -------------------------------------

# Market updates travel pre-encoded: the worker serialises each update once, and every consumer
# in every process writes the same text to its socket. `key` lets a slow client's outbox keep only
# the newest update per stream and symbol.
MARKET_EVENT = "market.message"
USER_EVENT = "user.message"


def conflation_key(message_type: str, symbol: str) -> str:
    """Updates with the same key replace each other in a slow client's outbox."""
    return f"{message_type}:{symbol}"


def market_event(message: dict, *, conflate: bool) -> dict:
    key = conflation_key(message["type"], message["symbol"]) if conflate else None
    return {"type": MARKET_EVENT, "text": encode(message), "key": key, "kind": message["type"]}


def user_event(message: dict) -> dict:
    return {"type": USER_EVENT, "text": encode(message), "kind": message["type"]}
