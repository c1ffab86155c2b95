"""The wire format, both ways: parse and validate client frames, build server frames.

Pure: no I/O, no Django, no clock except where a caller passes none. This is the only module that
knows the JSON shapes on the sockets; everything else calls these builders.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Context, Decimal
from enum import StrEnum
from typing import Any, ClassVar

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
    SERVICE_RESTART = 1012  # this instance is stopping (graceful drain): reconnect, another one serves


# --- what a client may ask for -------------------------------------------------------------------


class Endpoint(StrEnum):
    TRADING = "trading"
    MARKET = "market"


class Side(StrEnum):
    """An order's or a trade's side (a trade's: the taker's)."""

    BUY = "buy"
    SELL = "sell"


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
# Streams a client may resume with `since` (kept in a bounded history); state streams get a snapshot.
RESUMABLE_STREAMS = frozenset({Stream.TRADES})


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
    return (*listed, *(("refresh",) if endpoint is Endpoint.TRADING else ()), "ping")


class ProtocolError(Exception):
    """A client frame we refuse; `code` and `message` go back to the client as an error frame."""

    def __init__(self, message: str, code: int = Code.INVALID_MESSAGE, invalid: list[str] | None = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.invalid = invalid


@dataclass(frozen=True)
class Ping:
    type: str = "ping"


@dataclass(frozen=True)
class Since:
    """Where a client left a history: resume after `seq` if the history still has `epoch` and it."""

    epoch: str
    seq: int


@dataclass(frozen=True)
class ChannelRequest:
    """subscribe / unsubscribe on /ws/trading: per-user channels; `since` resumes some of them."""

    type: str
    subscribe: bool
    channels: tuple[str, ...]
    since: dict[str, Since] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class SymbolRequest:
    """subscribe_symbol and the market subscribe_* / unsubscribe_* requests; `since` for trades."""

    type: str
    subscribe: bool
    stream: Stream
    symbols: tuple[str, ...]
    since: dict[str, Since] = dataclasses.field(default_factory=dict)


@dataclass(frozen=True)
class Refresh:
    """Replace the connection's access token without reconnecting (/ws/trading)."""

    token: str
    type: str = "refresh"


Request = Ping | ChannelRequest | SymbolRequest | Refresh


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
    if kind == "refresh" and endpoint is Endpoint.TRADING:
        return Refresh(token=_token(data.get("token")))
    spec = _LIST_REQUESTS.get(kind)
    if spec is None or endpoint not in spec[0]:
        allowed = ", ".join(request_types(endpoint))
        raise ProtocolError(f"Unknown message type {kind!r}; this endpoint accepts: {allowed}")
    _endpoints, field_name, stream, subscribe = spec
    items = _string_list(data.get(field_name), field_name, max_items)
    if stream is None:
        channels = _known_channels(items)
        since = _since(data.get("since"), channels, subscribe, resumable=True)
        return ChannelRequest(type=kind, subscribe=subscribe, channels=channels, since=since)
    symbols = _symbols(items)
    since = _since(data.get("since"), symbols, subscribe, resumable=stream in RESUMABLE_STREAMS)
    return SymbolRequest(type=kind, subscribe=subscribe, stream=stream, symbols=symbols, since=since)


def _token(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ProtocolError("Field 'token' must be a non-empty string: a fresh access token")
    return value.strip()


def _since(value: Any, names: tuple[str, ...], subscribe: bool, *, resumable: bool) -> dict[str, Since]:
    """`since`: {name: {"epoch": str, "seq": int >= 0}} for names of this same request."""
    if value is None:
        return {}
    if not subscribe or not resumable:
        raise ProtocolError("Field 'since' is accepted only when subscribing to channels or trades")
    if not isinstance(value, dict):
        raise ProtocolError('Field \'since\' must be an object: {name: {"epoch": string, "seq": integer}}')
    strangers = [name for name in value if name not in names]
    if strangers:
        raise ProtocolError(f"Field 'since' names what this request does not subscribe: {', '.join(strangers)}")
    positions = {}
    for name, position in value.items():
        epoch = position.get("epoch") if isinstance(position, dict) else None
        seq = position.get("seq") if isinstance(position, dict) else None
        if not isinstance(epoch, str) or not isinstance(seq, int) or isinstance(seq, bool) or seq < 0:
            raise ProtocolError(f'since.{name} must be {{"epoch": string, "seq": integer >= 0}}')
        positions[name] = Since(epoch=epoch, seq=seq)
    return positions


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


# --- server frames: one typed definition per message ---------------------------------------------
#
# The wire contract is closed: each message the server sends is one dataclass below, and its
# builder takes exactly those fields. Rules for every message: `type` and `timestamp` (ISO 8601 UTC
# ending in Z) are always there; money and prices are strings; a field whose default is None is
# left out when it has no value, a field without a default is always sent (null where it says
# `| None`). tests/schema.py checks every frame the integration and browser suites receive
# against these definitions, and tests/test_contract.py holds the README and the JS client to them.


def now_iso() -> str:
    return iso_timestamp(datetime.now(UTC))


def iso_timestamp(moment: datetime) -> str:
    """ISO 8601 UTC with milliseconds and a trailing Z."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def iso_from_millis(millis: int) -> str:
    """An exchange event time (ms since the epoch) as our timestamp."""
    seconds, ms = divmod(int(millis), 1000)
    return f"{_iso_second(seconds)}{ms:03d}Z"


@functools.lru_cache(maxsize=256)
def _iso_second(seconds: int) -> str:
    # The worker stamps thousands of messages a second, nearly all within the same few seconds:
    # formatting a datetime for each cost more than the rest of a trade's normalisation.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S.")


_EXACT = Context(prec=80)


def decimal_str(value: Decimal | str | int | None) -> str | None:
    """A Decimal as a plain string (no exponent, no trailing zeros); strings pass through unchanged."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, float | bool):
        raise TypeError(f"money and prices are Decimal or str, never {type(value).__name__}")
    number = Decimal(value)
    if not number.is_finite():
        raise ValueError(f"not a finite amount: {value}")
    number = number.normalize(_EXACT)  # never rounded: the default context keeps only 28 digits
    text = format(number, "f")
    return "0" if text in {"-0", ""} else text


def encode(message: dict) -> str:
    return orjson.dumps(message).decode()


def seq_of(text: str) -> int | None:
    """The seq of an encoded message whose last field is `seq` (stored events, market snapshots),
    without parsing it; None when it has none."""
    _head, marker, tail = text.rpartition(',"seq":')
    digits = tail[:-1]
    if not marker or not tail.endswith("}") or not (digits.isascii() and digits.isdigit()):
        return None
    return int(digits)


@dataclass(frozen=True, kw_only=True)
class Frame:
    """What every server message has besides its own fields."""

    TYPE: ClassVar[str]
    timestamp: str | None = None  # set when built; None means now

    def as_message(self) -> dict:
        message = {"type": self.TYPE}
        for field_ in _payload_fields(type(self)):
            value = getattr(self, field_.name)
            if value is None and field_.default is None:
                continue
            message[field_.name] = _plain(value)
        message["timestamp"] = self.timestamp or now_iso()
        return message


@dataclass(frozen=True, kw_only=True)
class Error(Frame):
    TYPE = "error"
    code: int
    message: str
    invalid: list[str] | None = None  # the values a request was refused for


@dataclass(frozen=True, kw_only=True)
class Pong(Frame):
    TYPE = "pong"


@dataclass(frozen=True, kw_only=True)
class Heartbeat(Frame):
    TYPE = "heartbeat"


@dataclass(frozen=True, kw_only=True)
class Position:
    """A resume position: the epoch of a history and the last seq sent from it."""

    epoch: str
    seq: int


@dataclass(frozen=True, kw_only=True)
class Subscribed(Frame):
    TYPE = "subscribed"
    channels: list[str] | None = None  # /ws/trading subscribe
    symbols: list[str] | None = None  # subscribe_symbol and the market subscribe_* requests
    stream: str | None = None  # market requests only
    positions: dict[str, Position] | None = None  # per channel (trading) or symbol (market)
    recovered: dict[str, bool] | None = None  # per channel or symbol resumed with `since`


@dataclass(frozen=True, kw_only=True)
class Unsubscribed(Frame):
    TYPE = "unsubscribed"
    channels: list[str] | None = None
    symbols: list[str] | None = None
    stream: str | None = None


@dataclass(frozen=True, kw_only=True)
class Refreshed(Frame):
    TYPE = "refreshed"
    expires_at: str


@dataclass(frozen=True, kw_only=True)
class Ticker(Frame):
    TYPE = "ticker"
    symbol: str
    price: str
    price_change: str
    price_change_percent: str
    high_price: str
    low_price: str
    volume: str
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class Trade(Frame):
    TYPE = "trade"
    symbol: str
    price: str
    quantity: str
    side: str  # buy | sell: the taker's side
    trade_id: int | None = None
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class OrderBook(Frame):
    TYPE = "orderbook"
    symbol: str
    bids: list[list[str]]  # [price, quantity], best first
    asks: list[list[str]]
    last_update_id: int | None = None
    checksum: int | None = None  # CRC32 of the top 10 levels (Kraken's v2 book checksum)
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class OrderUpdate(Frame):
    TYPE = "order_update"
    order_id: str
    symbol: str
    side: str
    order_type: str  # market | limit (the order's own `type`; that key is the message's)
    status: str
    quantity: str
    price: str | None  # None for market orders
    filled_quantity: str
    remaining_quantity: str
    average_price: str | None  # None until something filled
    fee: str | None = None
    bot_id: str | None = None
    reason: str | None = None
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class RiskAlert(Frame):
    TYPE = "risk_alert"
    alert_type: str
    severity: str
    message: str
    limit_value: str
    current_value: str
    symbol: str | None = None
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class BotPerformance:
    total_pnl: str  # realized + unrealized, net of fees
    win_rate: str
    trades_today: int
    realized_pnl: str | None = None
    unrealized_pnl: str | None = None
    fees: str | None = None


@dataclass(frozen=True, kw_only=True)
class BotStatus(Frame):
    TYPE = "bot_status"
    bot_id: str
    name: str
    status: str
    performance: BotPerformance
    strategy: str | None = None
    symbol: str | None = None
    reason: str | None = None
    seq: int | None = None


@dataclass(frozen=True, kw_only=True)
class PortfolioPosition:
    symbol: str
    quantity: str
    average_price: str
    market_price: str | None
    market_value: str | None
    unrealized_pnl: str | None
    realized_pnl: str  # net of fees
    fees: str | None = None


@dataclass(frozen=True, kw_only=True)
class AssetBalance:
    asset: str
    free: str
    locked: str  # reserved by open orders


@dataclass(frozen=True, kw_only=True)
class Portfolio(Frame):
    TYPE = "portfolio"
    total_value: str
    positions: list[PortfolioPosition]
    cash: str | None = None
    currency: str | None = None
    unrealized_pnl: str | None = None
    realized_pnl: str | None = None
    fees: str | None = None
    balances: list[AssetBalance] | None = None
    seq: int | None = None


SERVER_MESSAGES: dict[str, type[Frame]] = {
    cls.TYPE: cls
    for cls in (
        Error, Pong, Heartbeat, Subscribed, Unsubscribed, Refreshed,
        Ticker, Trade, OrderBook, OrderUpdate, RiskAlert, BotStatus, Portfolio,
    )
}  # fmt: skip


@functools.cache
def _payload_fields(cls: type) -> tuple[dataclasses.Field, ...]:
    return tuple(f for f in dataclasses.fields(cls) if f.name != "timestamp")


@functools.cache
def _flat_layout(cls: type) -> tuple[frozenset[str], tuple[tuple[str, bool, Any], ...]]:
    """The names a message class takes, and (name, required, default) of its payload fields in order."""
    fields = dataclasses.fields(cls)
    names = frozenset(f.name for f in fields)
    no_default = dataclasses.MISSING
    return names, tuple((f.name, f.default is no_default, f.default) for f in _payload_fields(cls))


def _flat_message(cls: type[Frame], fields: dict[str, Any]) -> dict:
    """`cls(**fields).as_message()` without building the dataclass when every value is already plain
    (str, int, bool, None): the worker builds thousands of tickers and trades a second, and the frozen
    dataclass and the generic pass cost more than the rest of a trade's normalisation. Anything else
    (an unknown or missing field, a Decimal) takes the dataclass's own path, with its checks."""
    names, layout = _flat_layout(cls)
    if not fields.keys() <= names or any(type(value) not in _PLAIN_TYPES for value in fields.values()):
        return cls(**fields).as_message()
    message = {"type": cls.TYPE}
    for name, required, default in layout:
        if name in fields:
            value = fields[name]
        elif required:
            return cls(**fields).as_message()  # raises the dataclass's TypeError
        else:
            value = default
        if value is None and default is None:
            continue
        message[name] = value
    message["timestamp"] = fields.get("timestamp") or now_iso()
    return message


# Values already as JSON wants them. Checked by exact type first: an order book's 40 levels are 120
# values, and the generic checks below cost far more than the level itself.
_PLAIN_TYPES = frozenset({str, int, bool, type(None)})


def _plain(value: Any) -> Any:
    """Nested definitions (positions, performance) as JSON objects; Decimals as strings."""
    if type(value) in _PLAIN_TYPES:
        return value
    if type(value) is list:  # before is_dataclass, which is slow to say no
        return [_plain(item) for item in value]
    if dataclasses.is_dataclass(value):
        return {
            f.name: _plain(getattr(value, f.name))
            for f in dataclasses.fields(value)
            if getattr(value, f.name) is not None or f.default is not None  # optional and empty: left out
        }
    if isinstance(value, list):
        return [_plain(item) for item in value]
    if isinstance(value, dict):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, Decimal | float):
        return decimal_str(value)
    return value


def _money(fields: dict, *names: str) -> dict:
    """The named amounts as strings (Decimals converted, floats refused)."""
    return {**fields, **{name: decimal_str(fields[name]) for name in names if name in fields}}


# --- builders: the only way the rest of the system makes a server message ------------------------


def error(code: int, message: str, invalid: list[str] | None = None) -> dict:
    return Error(code=code, message=message, invalid=invalid).as_message()


def error_from(exc: ProtocolError) -> dict:
    return error(exc.code, exc.message, exc.invalid)


def pong() -> dict:
    return Pong().as_message()


def heartbeat() -> dict:
    return Heartbeat().as_message()


def channels_ack(
    subscribe: bool,
    channels: tuple[str, ...] | list[str],
    positions: dict[str, Position] | None = None,
    recovered: dict[str, bool] | None = None,
) -> dict:
    if not subscribe:
        return Unsubscribed(channels=list(channels)).as_message()
    return Subscribed(channels=list(channels), positions=positions, recovered=recovered).as_message()


def symbols_ack(
    request: SymbolRequest,
    positions: dict[str, Position] | None = None,
    recovered: dict[str, bool] | None = None,
) -> dict:
    """subscribe_symbol is acked without a stream (as the contract says); market requests name it."""
    stream = None if request.type.endswith("_symbol") else str(request.stream)
    if not request.subscribe:
        return Unsubscribed(stream=stream, symbols=list(request.symbols)).as_message()
    return Subscribed(
        stream=stream, symbols=list(request.symbols), positions=positions, recovered=recovered
    ).as_message()


def refreshed(expires_at: float | None) -> dict:
    """The connection now runs on the new token, which expires at `expires_at` (seconds since the epoch)."""
    moment = datetime.fromtimestamp(expires_at, UTC) if expires_at is not None else None
    return Refreshed(expires_at=iso_timestamp(moment) if moment else "never").as_message()


def ticker(**fields: Any) -> dict:
    return _flat_message(Ticker, fields)


_SIDES = frozenset(Side)


def trade(**fields: Any) -> dict:
    if fields.get("side") not in _SIDES:
        raise ValueError(f"side must be buy or sell, not {fields.get('side')!r}")
    return _flat_message(Trade, fields)


def trade_of(symbol: str, price: str, quantity: str, side: str, trade_id: int, timestamp: str) -> dict:
    """`trade(...)` of values already checked (strings, an int, a side): the worker builds thousands
    a second, and this is the dict in one step, key for key what Trade(...).as_message() gives."""
    return {
        "type": Trade.TYPE,
        "symbol": symbol,
        "price": price,
        "quantity": quantity,
        "side": side,
        "trade_id": trade_id,
        "timestamp": timestamp,
    }


def orderbook(
    *,
    symbol: str,
    bids: list[Sequence[str]],
    asks: list[Sequence[str]],
    timestamp: str | None = None,
    last_update_id: int | None = None,
    checksum: int | None = None,
    seq: int | None = None,
) -> dict:
    """OrderBook's message, built directly; the levels must already be [price, quantity] strings
    (anything else, a float above all, raises TypeError)."""
    # The worker builds hundreds of books a second, and the generic as_message walked every level
    # through _plain (a third of publishing a book). Nothing here converts the levels (lists and
    # tuples both encode as arrays); one join checks they are all strings, in C. The tests hold this
    # to OrderBook(...).as_message().
    for side, levels in (("bids", bids), ("asks", asks)):
        try:
            "".join(itertools.chain.from_iterable(levels))
        except TypeError:
            raise TypeError(f"orderbook {side} must be [price, quantity] strings, as sent: {levels[:3]!r}") from None
    message = {"type": OrderBook.TYPE, "symbol": symbol, "bids": bids, "asks": asks}
    if last_update_id is not None:
        message["last_update_id"] = last_update_id
    if checksum is not None:
        message["checksum"] = checksum
    if seq is not None:
        message["seq"] = seq
    message["timestamp"] = timestamp or now_iso()
    return message


def order_update(**fields: Any) -> dict:
    amounts = ("quantity", "price", "filled_quantity", "remaining_quantity", "average_price", "fee")
    fields = _money(fields, *amounts)
    return OrderUpdate(**{**fields, "order_id": str(fields["order_id"])}).as_message()


def risk_alert(**fields: Any) -> dict:
    return RiskAlert(**_money(fields, "limit_value", "current_value")).as_message()


def bot_status(**fields: Any) -> dict:
    amounts = ("total_pnl", "win_rate", "realized_pnl", "unrealized_pnl", "fees")
    performance = BotPerformance(**_money(fields["performance"], *amounts))
    return BotStatus(**{**fields, "bot_id": str(fields["bot_id"]), "performance": performance}).as_message()


def portfolio(**fields: Any) -> dict:
    position_amounts = (
        "quantity", "average_price", "market_price", "market_value", "unrealized_pnl", "realized_pnl", "fees"
    )  # fmt: skip
    positions = [PortfolioPosition(**_money(p, *position_amounts)) for p in fields["positions"]]
    balances = fields.get("balances")
    if balances is not None:
        balances = [AssetBalance(**_money(b, "free", "locked")) for b in balances]
    totals = _money(fields, "total_value", "cash", "unrealized_pnl", "realized_pnl", "fees")
    return Portfolio(**{**totals, "positions": positions, "balances": balances}).as_message()


# --- messages between our processes (channel-layer events) -------------------------------------

# Market updates travel pre-encoded: the worker serialises each update once, and every consumer
# in every process writes the same text to its socket. `key` lets a slow client's outbox keep only
# the newest update per stream and symbol.
MARKET_EVENT = "market.message"
USER_EVENT = "user.message"
REVOKED_EVENT = "user.revoked"  # the user was deactivated, deleted or changed password: close with 4002
RESTART_EVENT = "gateway.restart"  # this process is draining (realtime.drain): close with 1012


def conflation_key(message_type: str, symbol: str) -> str:
    """Updates with the same key replace each other in a slow client's outbox."""
    return f"{message_type}:{symbol}"


def market_event(message: dict, *, conflate: bool) -> dict:
    """A market layer event without a history (the benchmark's baseline for the cost of seq)."""
    key = conflation_key(message["type"], message["symbol"]) if conflate else None
    return {"type": MARKET_EVENT, "text": encode(message), "key": key, "kind": message["type"]}


def user_event(message: dict) -> dict:
    """A trading layer event without a history (the benchmark's baseline for the cost of seq)."""
    return {"type": USER_EVENT, "text": encode(message), "kind": message["type"]}
