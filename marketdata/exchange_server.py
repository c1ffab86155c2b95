"""The local exchange's server: Binance's spot stream and public REST protocol over real sockets, on one port.

It owns sockets, subscriptions and timing; what it sends comes from the market model
(exchange_model.py) and the REST bodies from exchange_rest.py. Real Binance clients (binance-connector,
binance-sdk-spot, python-binance, ccxt / ccxt.pro) work against it: tests/interop/ proves it.

Streams (websockets):
  /stream?streams=btcusdt@ticker/btcusdt@trade/...   combined: {"stream": ..., "data": payload}
  /ws, /ws/<anything>                                raw: the payload itself
  `?timeUnit=MICROSECOND` on either: every timestamp in microseconds.
  SUBSCRIBE / UNSUBSCRIBE / LIST_SUBSCRIPTIONS / SET_PROPERTY / GET_PROPERTY with ids (an unsigned
  integer, a string of up to 36 letters, digits and dashes, or null), Binance's replies and error
  replies ({"error": {"code", "msg"}, "id"}). Streams: `<symbol>@ticker`, `@miniTicker`, `@trade`,
  `@aggTrade`, `@bookTicker`, `@kline_<interval>`, `@depth` (1 s) and `@depth@100ms` (diffs),
  `@depth5/10/20` and `@depth5/10/20@100ms` (partial books), `!ticker@arr`, `!miniTicker@arr`.
  A name in a URL that is no stream (`/ws/0`, upper case) opens the connection and delivers nothing,
  as on Binance. Server pings every 20 s, a minute to answer; more than 5 incoming messages a second
  (control messages, ping and pong frames) cut the connection with 1008.
REST (plain HTTP on the same port): GET /api/v3/ping, /time, /exchangeInfo, /depth, /trades,
  /aggTrades, /klines, /uiKlines, /avgPrice, /ticker/24hr, /ticker/price, /ticker/bookTicker;
  `X-MBX-TIME-UNIT: MICROSECOND` gives their times in microseconds.
Test control (namespaced under /_sim/, JSON body or query string):
  POST /_sim/trade {"symbol","price","quantity","buyer_maker"}  print a trade now (and a ticker)
  POST /_sim/drop       drop every stream connection abruptly (no close frame)
  POST /_sim/garbage    send a few malformed frames to every connection
  POST /_sim/shutdown   send Binance's serverShutdown event to every connection
  POST /_sim/pause, /_sim/resume   stop / restart the feed (nothing is sent while paused)
  POST /_sim/gap {"symbol"}        leave out the next @depth@100ms event: a gap in update ids
  GET  /_sim/state      connections, subscriptions, markets
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import re
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import parse_qs, urlsplit

import orjson
from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.datastructures import Headers
from websockets.exceptions import ConnectionClosed
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response

from marketdata import exchange_rest
from marketdata.exchange_model import INTERVALS, SimulatedMarket, fmt
from marketdata.exchange_rest import RestError

logger = logging.getLogger(__name__)

_KLINE = "|".join(re.escape(i) for i in INTERVALS)
_STREAM = re.compile(
    rf"^([a-z0-9]{{2,20}})@(ticker|miniTicker|trade|aggTrade|bookTicker|depth(?:5|10|20)?(?:@100ms)?|kline_(?:{_KLINE}))$"
)
ALL_MARKET_STREAMS = ("!ticker@arr", "!miniTicker@arr")
PARTIAL_DEPTHS = (5, 10, 20)
_DECIMAL = re.compile(r"^\d{1,20}(\.\d{1,18})?$")
_REQUEST_ID = re.compile(r"^[A-Za-z0-9-]{1,36}$")
MAX_REQUEST_ID = (1 << 64) - 1
METHODS = ("SUBSCRIBE", "UNSUBSCRIBE", "LIST_SUBSCRIPTIONS", "SET_PROPERTY", "GET_PROPERTY")
MAX_BODY = 64 * 1024
HISTORY = 2000  # recent payloads per stream kept for tests to compare against
RATE_LIMITS = [
    {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
    {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
    {"rateLimitType": "RAW_REQUESTS", "interval": "MINUTE", "intervalNum": 5, "limit": 61000},
]
_TIME_KEYS = ("E", "T", "O", "C")  # payload fields holding a time (and "t"/"T" inside a kline's "k")

GARBAGE_FRAMES: tuple[str | bytes, ...] = (
    "this is not json",
    "[1, 2, 3]",
    '{"stream": "btcusdt@trade", "data": {"e": "trade", "E": 1, "s": "BTCUSDT", "p": "not-a-price"}}',
    '{"e": "depthUpdate", "s": "BTCUSDT"}',
    b"\x00\x01 binary garbage",
)


def is_stream(name: str) -> bool:
    """A stream this exchange serves (symbols in lower case, as Binance names them)."""
    return name in ALL_MARKET_STREAMS or _STREAM.fullmatch(name) is not None


@dataclass(frozen=True)
class SimulatorConfig:
    symbols: tuple[str, ...] = ("BTCUSDT", "ETHUSDT", "ADAUSDT")
    interval: float = 0.1  # one market step: the @depth@100ms rate
    ticker_every: int = 10  # steps between @ticker events (1 s at 100 ms, as Binance)
    slow_depth_every: int = 10  # steps between @depth events
    trade_chance: float = 0.5  # expected random trades per symbol and step (above 1: several a step)
    levels: int = 50  # price levels per side
    seed: int | None = None
    max_streams_per_connection: int = 1024
    max_messages_per_second: int = 5  # 0: no limit
    ping_interval: float | None = 20.0
    ping_timeout: float | None = 60.0  # Binance waits a minute for the pong
    send_queue: int = 10_000  # frames queued for one client before it is cut off as too slow


def next_step_at(previous: float, interval: float, now: float) -> float:
    """When the market step after the one due at `previous` is due: one interval later, or now if
    that moment has passed already (a late step starts the cadence again instead of a burst)."""
    return max(previous + interval, now)


class RequestError(Exception):
    """A bad stream request: answered with Binance's error reply, the connection stays open."""

    def __init__(self, code: int, msg: str, request_id: Any = None):
        super().__init__(msg)
        self.code, self.msg, self.request_id = code, msg, request_id


@dataclass
class RateWindow:
    """Incoming messages of the last second on one connection."""

    limit: int
    recent: deque = field(default_factory=deque)  # monotonic times

    def over(self) -> bool:
        """Count one message now; True when the last second held more than `limit`."""
        if not self.limit:
            return False
        now = time.monotonic()
        self.recent.append(now)
        while self.recent and self.recent[0] <= now - 1.0:
            self.recent.popleft()
        return len(self.recent) > self.limit


@dataclass
class Client:
    id: int
    connection: ExchangeConnection
    path: str
    combined: bool
    subscriptions: set[str]
    micro: bool = False  # ?timeUnit=MICROSECOND
    connected_at: float = field(default_factory=time.time)
    messages_received: int = 0
    queue: asyncio.Queue = field(default_factory=asyncio.Queue)

    def describe(self) -> dict:
        return {
            "id": self.id,
            "path": self.path,
            "combined": self.combined,
            "subscriptions": sorted(self.subscriptions),
            "connected_at": self.connected_at,
            "messages_received": self.messages_received,
            "time_unit": "MICROSECOND" if self.micro else "MILLISECOND",
        }


class ExchangeConnection(ServerConnection):
    """A stream connection that counts ping and pong frames toward the message limit, as Binance does.

    Also: websockets parses only bodiless requests, so a small request body for the control
    endpoints is cut off before websockets sees the request (its Content-Length header removed),
    and process_request finds it in `self.body`.
    """

    body = b""
    _head = b""
    _passed = False
    rate: RateWindow | None = None  # set once the connection is a client
    on_rate_exceeded: Callable[[], None] | None = None

    def process_event(self, event) -> None:
        control = isinstance(event, Frame) and event.opcode in (Opcode.PING, Opcode.PONG)
        if control and self.rate is not None and self.rate.over() and self.on_rate_exceeded is not None:
            self.on_rate_exceeded()
        super().process_event(event)

    def data_received(self, data: bytes) -> None:
        if self._passed:
            super().data_received(data)
            return
        self._head += data
        end = self._head.find(b"\r\n\r\n")
        if end < 0 and len(self._head) < MAX_BODY:
            return
        head, rest = self._head[: end + 4], self._head[end + 4 :]
        length = _content_length(head)
        if end >= 0 and 0 < length <= MAX_BODY:
            if len(rest) < length:
                return  # wait for the rest of the body
            self.body, rest = rest[:length], rest[length:]
            head = _without_content_length(head)
        self._passed = True
        self._head = b""
        super().data_received(head + rest)


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            with contextlib.suppress(ValueError):
                return int(value.strip())
    return 0


def _without_content_length(head: bytes) -> bytes:
    lines = head.split(b"\r\n")
    return b"\r\n".join(line for line in lines if not line.lower().startswith(b"content-length:"))


class ExchangeSimulator:
    """Start with `async with ExchangeSimulator(config).running(port=0) as sim:`; URLs in sim.ws_url, sim.rest_url."""

    def __init__(self, config: SimulatorConfig | None = None):
        self.config = config or SimulatorConfig()
        self._rng = random.Random(self.config.seed)
        self.markets = {s: SimulatedMarket(s, self._rng, self.config.levels) for s in self.config.symbols}
        self.clients: dict[int, Client] = {}
        self.history: dict[str, deque] = {}
        self.connections_accepted = 0
        self.rate_limit_disconnects = 0
        self.paused = False
        self.host, self.port = "127.0.0.1", 0
        self._ids = iter(range(1, 1 << 62))
        self._changed = asyncio.Condition()
        self._server: Server | None = None
        self._feed: asyncio.Task | None = None
        self._steps = 0
        self._wanted: set[str] | None = None  # every client's subscriptions, recomputed after a change
        self._best: dict[str, tuple] = {}  # symbol -> best bid and ask last sent on @bookTicker
        self._closing: set[asyncio.Task] = set()
        self._routes: dict[tuple[str, str], Callable[[dict], Any]] = {
            ("GET", "/api/v3/ping"): lambda _params: {},
            ("GET", "/api/v3/time"): lambda _params: {"serverTime": _now_ms()},
            ("GET", "/api/v3/exchangeInfo"): lambda p: exchange_rest.exchange_info(
                self.markets, p, _now_ms(), RATE_LIMITS
            ),
            **{("GET", path): self._market_data(handler) for path, handler in exchange_rest.ROUTES.items()},
            ("POST", "/_sim/trade"): self._control_trade,
            ("POST", "/_sim/drop"): lambda _params: {"dropped": self.drop_connections()},
            ("POST", "/_sim/garbage"): lambda _params: {"sent_to": self.send_garbage()},
            ("POST", "/_sim/shutdown"): lambda _params: {"sent_to": self.announce_shutdown()},
            ("POST", "/_sim/pause"): lambda _params: {"paused": self.pause()},
            ("POST", "/_sim/resume"): lambda _params: {"paused": self.resume()},
            ("POST", "/_sim/gap"): self._control_gap,
            ("GET", "/_sim/state"): lambda _params: self.state(),
        }

    # --- lifecycle --------------------------------------------------------------------------------

    @property
    def ws_url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    @property
    def rest_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> ExchangeSimulator:
        sockets_logger = logging.getLogger(f"{__name__}.websockets")
        if sockets_logger.level == logging.NOTSET:
            sockets_logger.setLevel(logging.WARNING)  # websockets logs every HTTP request at INFO
        self._server = await serve(
            self._handle,
            host,
            port,
            process_request=self._process_request,
            create_connection=ExchangeConnection,
            ping_interval=self.config.ping_interval,
            ping_timeout=self.config.ping_timeout,
            compression=None,
            logger=sockets_logger,
        )
        self.host, self.port = self._server.sockets[0].getsockname()[:2]
        self._feed = asyncio.create_task(self._run_feed(), name="simulator-feed")
        # DEBUG: whoever starts it says where it listens (simulate_exchange prints one line).
        logger.debug("exchange simulator listening on %s (REST %s)", self.ws_url, self.rest_url)
        return self

    async def stop(self) -> None:
        if self._feed is not None:
            self._feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._feed
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @contextlib.asynccontextmanager
    async def running(self, host: str = "127.0.0.1", port: int = 0):
        await self.start(host, port)
        try:
            yield self
        finally:
            await self.stop()

    async def wait_until(self, predicate: Callable[[ExchangeSimulator], bool], timeout: float) -> None:
        """Wait until `predicate(self)` holds; re-checked whenever a connection or subscription changes."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: predicate(self))

    async def _notify(self) -> None:
        self._wanted = None
        async with self._changed:
            self._changed.notify_all()

    # --- the feed ---------------------------------------------------------------------------------

    async def _run_feed(self) -> None:
        # Steps on a fixed cadence, as Binance's @depth@100ms: sleeping a whole interval after each
        # step would stretch every step by the time it took (at 100 symbols, 0.12 s instead of 0.1).
        # A step that comes late is not made up with a burst: the cadence starts again from now.
        loop = asyncio.get_running_loop()
        step_at = loop.time()
        while True:
            step_at = next_step_at(step_at, self.config.interval, loop.time())
            await asyncio.sleep(step_at - loop.time())
            if not self.paused:
                self._steps += 1
                for market in self.markets.values():
                    self._step(market)
                if self._steps % self.config.ticker_every == 0:
                    self._publish_all_markets(_now_ms())

    def _step(self, market: SimulatedMarket) -> None:
        now, name = _now_ms(), market.symbol.lower()
        market.step_book()
        fast = market.fast.flush(market.symbol, now)
        if market.skip_next_fast:
            market.skip_next_fast = False  # the ids in `fast` are never sent: a gap
        elif fast is not None:
            self.publish(f"{name}@depth@100ms", fast)
        self._publish_partial_depth(market, "@100ms")
        self._publish_book_ticker(market)
        if self._steps % self.config.slow_depth_every == 0:
            if slow := market.slow.flush(market.symbol, now):
                self.publish(f"{name}@depth", slow)
            self._publish_partial_depth(market, "")
        for _ in range(self._trades_this_step()):
            self._publish_trade(market, market.random_trade(now))
        if self._steps % self.config.ticker_every == 0:
            self._publish_statistics(market, now)

    def _trades_this_step(self) -> int:
        """The whole part of `trade_chance` always, the fraction by chance (0.5: a trade every other step)."""
        whole, fraction = divmod(self.config.trade_chance, 1)
        return int(whole) + (self._rng.random() < fraction)

    def _publish_trade(self, market: SimulatedMarket, payload: dict) -> None:
        name = market.symbol.lower()
        self.publish(f"{name}@trade", payload)
        if f"{name}@aggTrade" in self.wanted:
            self.publish(f"{name}@aggTrade", market.agg_trade(market.last_trade))

    def _publish_statistics(self, market: SimulatedMarket, now: int) -> None:
        name = market.symbol.lower()
        self.publish(f"{name}@ticker", market.ticker(now))
        if f"{name}@miniTicker" in self.wanted:
            self.publish(f"{name}@miniTicker", market.mini_ticker(now))
        prefix = f"{name}@kline_"
        for stream in [s for s in self.wanted if s.startswith(prefix)]:
            self.publish(stream, market.kline_event(stream.removeprefix(prefix), now))

    def _publish_all_markets(self, now: int) -> None:
        if "!ticker@arr" in self.wanted:
            self.publish("!ticker@arr", [m.ticker(now) for m in self.markets.values()])
        if "!miniTicker@arr" in self.wanted:
            self.publish("!miniTicker@arr", [m.mini_ticker(now) for m in self.markets.values()])

    def _publish_partial_depth(self, market: SimulatedMarket, speed: str) -> None:
        for levels in PARTIAL_DEPTHS:
            stream = f"{market.symbol.lower()}@depth{levels}{speed}"
            if stream in self.wanted:
                self.publish(stream, market.depth_snapshot(levels))

    def _publish_book_ticker(self, market: SimulatedMarket) -> None:
        """Best bid and ask, whenever either changes (price or size), as Binance sends them."""
        stream = f"{market.symbol.lower()}@bookTicker"
        if stream not in self.wanted:
            return
        payload = market.book_ticker()
        best = (payload["b"], payload["B"], payload["a"], payload["A"])
        if self._best.get(market.symbol) != best:
            self._best[market.symbol] = best
            self.publish(stream, payload)

    @property
    def wanted(self) -> set[str]:
        """Every stream some client listens to: streams nobody listens to are not even built."""
        if self._wanted is None:
            self._wanted = set().union(*(c.subscriptions for c in self.clients.values()))
        return self._wanted

    def publish(self, stream: str, payload: dict | list) -> None:
        """Send one payload to every client subscribed to `stream`, in its endpoint's shape."""
        self.history.setdefault(stream, deque(maxlen=HISTORY)).append(payload)
        frames: dict[tuple[bool, bool], str] = {}
        for client in list(self.clients.values()):
            if stream not in client.subscriptions:
                continue
            shape = (client.combined, client.micro)
            if shape not in frames:
                data = _in_microseconds(payload) if client.micro else payload
                frames[shape] = orjson.dumps({"stream": stream, "data": data} if client.combined else data).decode()
            self._enqueue(client, frames[shape])

    def _enqueue(self, client: Client, frame: str | bytes) -> None:
        if client.queue.qsize() >= self.config.send_queue:
            logger.warning("simulator client %d is too slow; dropping it", client.id)
            client.connection.transport.abort()
            return
        client.queue.put_nowait(frame)

    # --- control (in process, and behind /_sim/) --------------------------------------------------

    def print_trade(self, symbol: str, price: str, quantity: str, buyer_maker: bool = False) -> dict:
        """Print a trade now on `<symbol>@trade` and move the ticker's last price (and the book) to it."""
        market = self._market(symbol)
        now = _now_ms()
        payload = market.trade(price, quantity, buyer_maker, now)
        market.move_to(Decimal(price))
        self._publish_trade(market, payload)
        self._publish_statistics(market, now)
        return payload

    def drop_connections(self) -> int:
        clients = list(self.clients.values())
        for client in clients:
            client.connection.transport.abort()  # no close frame: what a network failure looks like
        return len(clients)

    def send_garbage(self) -> int:
        for client in self.clients.values():
            for frame in GARBAGE_FRAMES:
                self._enqueue(client, frame)
        return len(self.clients)

    def announce_shutdown(self) -> int:
        """Binance's streams' serverShutdown: the bare event on raw connections, wrapped on combined ones."""
        event = {"e": "serverShutdown", "E": _now_ms()}
        for client in self.clients.values():
            data = _in_microseconds(event) if client.micro else event
            frame = {"stream": "!serverShutdown", "data": data} if client.combined else data
            self._enqueue(client, orjson.dumps(frame).decode())
        return len(self.clients)

    def pause(self) -> bool:
        self.paused = True
        return self.paused

    def resume(self) -> bool:
        self.paused = False
        return self.paused

    def skip_depth_event(self, symbol: str) -> None:
        self._market(symbol).skip_next_fast = True

    def state(self) -> dict:
        return {
            "paused": self.paused,
            "connections": [c.describe() for c in self.clients.values()],
            "connections_accepted": self.connections_accepted,
            "rate_limit_disconnects": self.rate_limit_disconnects,
            "markets": {
                s: {"price": m.last_price_text, "update_id": m.update_id, "trades": m.trade_count}
                for s, m in self.markets.items()
            },
        }

    def _market(self, symbol: Any) -> SimulatedMarket:
        return exchange_rest.market_of(self.markets, symbol)

    # --- HTTP -------------------------------------------------------------------------------------

    async def _process_request(self, connection: ExchangeConnection, request: Request) -> Response | None:
        target = urlsplit(request.path)
        try:
            if target.path in ("/ws", "/stream") or target.path.startswith("/ws/"):
                _initial_streams(target.path, target.query, self.config.max_streams_per_connection)
                return None  # refuse bad URLs before the upgrade, open the rest
            route = self._routes.get((request.method, target.path))
            if route is None:
                raise RestError(404, -1000, f"No route for {request.method} {target.path}")
            unit = request.headers.get("X-MBX-TIME-UNIT", "MILLISECOND").upper()
            if unit not in ("MILLISECOND", "MICROSECOND"):
                raise RestError(400, -1100, "Invalid X-MBX-TIME-UNIT: MILLISECOND or MICROSECOND")
            body = route(_params(target.query, connection.body))
            if unit == "MICROSECOND" and target.path.startswith("/api/"):
                body = exchange_rest.in_microseconds(target.path, body)
            return _json_response(200, body)
        except RestError as error:
            return _json_response(error.status, error.body)

    def _market_data(self, handler: Callable[[Any, dict, int], Any]) -> Callable[[dict], Any]:
        return lambda params: handler(self.markets, params, _now_ms())

    def _control_trade(self, params: dict) -> dict:
        market = self._market(params.get("symbol"))
        price = _decimal_param(params, "price", market.last_price_text)
        quantity = _decimal_param(params, "quantity", fmt(market.step))
        buyer_maker = params.get("buyer_maker", False) in (True, "true", "1", "True")
        return {"trade": self.print_trade(market.symbol, price, quantity, buyer_maker)}

    def _control_gap(self, params: dict) -> dict:
        self.skip_depth_event(params.get("symbol"))
        return {"gap": str(params.get("symbol")).upper()}

    # --- streams ----------------------------------------------------------------------------------

    async def _handle(self, connection: ExchangeConnection) -> None:
        target = urlsplit(connection.request.path)
        opened = _initial_streams(target.path, target.query, self.config.max_streams_per_connection)
        client = Client(next(self._ids), connection, connection.request.path, opened.combined, opened.streams)
        client.micro = opened.micro
        connection.rate = RateWindow(self.config.max_messages_per_second)
        connection.on_rate_exceeded = lambda: self._cut(client)
        self.clients[client.id] = client
        self.connections_accepted += 1
        await self._notify()
        writer = asyncio.create_task(self._write(client))
        try:
            async for message in connection:
                await self._on_message(client, message)
        except ConnectionClosed:
            pass
        finally:
            writer.cancel()
            self.clients.pop(client.id, None)
            await self._notify()

    async def _write(self, client: Client) -> None:
        with contextlib.suppress(ConnectionClosed):
            while True:
                await client.connection.send(await client.queue.get())

    def _cut(self, client: Client) -> None:
        """More than the allowed messages in a second: closed with 1008, as Binance does."""
        if client.connection.rate is None:
            return  # already being cut
        client.connection.rate = None
        self.rate_limit_disconnects += 1
        logger.warning("simulator client %d sent more than %d messages in a second", client.id, self._limit)
        closing = asyncio.get_running_loop().create_task(client.connection.close(1008, "Too many requests"))
        self._closing.add(closing)  # keep a reference until it is done
        closing.add_done_callback(self._closing.discard)

    async def _on_message(self, client: Client, message: str | bytes) -> None:
        client.messages_received += 1
        rate = client.connection.rate
        if rate is None or rate.over():
            self._cut(client)
            return
        try:
            request = _request(message)
            result = self._answer(client, request)
        except RequestError as error:
            reply = {"error": {"code": error.code, "msg": error.msg}, "id": error.request_id}
        else:
            reply = {"result": result, "id": request["id"]}
        self._enqueue(client, orjson.dumps(reply).decode())
        await self._notify()

    @property
    def _limit(self) -> int:
        return self.config.max_messages_per_second

    def _answer(self, client: Client, request: dict) -> Any:
        try:
            return self._apply(client, request)
        except RequestError as error:
            error.request_id = request["id"]
            raise

    def _apply(self, client: Client, request: dict) -> Any:
        method = request["method"]
        if method == "LIST_SUBSCRIPTIONS":
            return sorted(client.subscriptions)
        if method in ("SET_PROPERTY", "GET_PROPERTY"):
            return _property(client, method, request.get("params"))
        streams = _stream_params(request.get("params"))
        if method == "SUBSCRIBE":
            if len(client.subscriptions | streams) > self.config.max_streams_per_connection:
                raise RequestError(2, f"Invalid request: at most {self.config.max_streams_per_connection} streams")
            client.subscriptions |= streams
        else:
            client.subscriptions -= streams
        return None


@dataclass(frozen=True)
class Opened:
    """What a stream URL asks for."""

    combined: bool
    streams: set[str]
    micro: bool


def _initial_streams(path: str, query: str, max_streams: int) -> Opened:
    """The streams named in a URL, or RestError for a URL Binance would refuse.

    Names that are no stream (`/ws/0` as ccxt.pro opens it, upper-case symbols) open the connection
    and deliver nothing, as on Binance; the client subscribes afterwards.
    """
    query_params = parse_qs(query)
    if path == "/stream":
        names = [n for n in query_params.get("streams", [""])[0].split("/") if n]
        combined = True
    else:
        names = [n for n in path.removeprefix("/ws").removeprefix("/").split("/") if n]
        combined = False
    if len(names) > max_streams:
        raise RestError(400, -1100, f"At most {max_streams} streams per connection")
    unit = query_params.get("timeUnit", ["MILLISECOND"])[-1].upper()
    if unit not in ("MILLISECOND", "MICROSECOND"):
        raise RestError(400, -1100, "Invalid timeUnit: MILLISECOND or MICROSECOND")
    return Opened(combined, {n for n in names if is_stream(n)}, unit == "MICROSECOND")


def _in_microseconds(payload: dict | list) -> dict | list:
    """A payload with every time field in microseconds (`?timeUnit=MICROSECOND`)."""
    if isinstance(payload, list):
        return [_in_microseconds(item) for item in payload]
    converted = {k: v * 1000 if k in _TIME_KEYS and isinstance(v, int) else v for k, v in payload.items()}
    if isinstance(payload.get("k"), dict):
        converted["k"] = {k: v * 1000 if k in ("t", "T") else v for k, v in payload["k"].items()}
    return converted


# --- request parsing (Binance's error texts) ------------------------------------------------------


def _request(message: str | bytes) -> dict:
    try:
        request = orjson.loads(message)
    except orjson.JSONDecodeError:
        raise RequestError(3, "Invalid JSON: expected value at line 1 column 1") from None
    if not isinstance(request, dict):
        raise RequestError(3, "Invalid JSON: expected an object")
    request_id = request.setdefault("id", None)
    if not _valid_request_id(request_id):
        raise RequestError(2, "Invalid request: request ID must be an unsigned integer")
    if "method" not in request:
        raise RequestError(2, "Invalid request: missing field `method`", request_id)
    if request["method"] not in METHODS:
        expected = ", ".join(f"`{m}`" for m in METHODS)
        message = f"Invalid request: unknown variant {request['method']!r}, expected one of {expected}"
        raise RequestError(2, message, request_id)
    return request


def _valid_request_id(request_id: Any) -> bool:
    """Binance's ids: null, an unsigned integer, or up to 36 letters, digits and dashes (a UUID fits)."""
    if request_id is None:
        return True
    if isinstance(request_id, int) and not isinstance(request_id, bool):
        return 0 <= request_id <= MAX_REQUEST_ID
    return isinstance(request_id, str) and _REQUEST_ID.fullmatch(request_id) is not None


def _stream_params(params: Any) -> set[str]:
    if not isinstance(params, list) or not all(isinstance(p, str) for p in params):
        raise RequestError(2, "Invalid request: params must be a list of stream names")
    bad = [p for p in params if not is_stream(p)]
    if bad:
        raise RequestError(2, f"Invalid request: invalid stream name(s) {', '.join(bad[:5])}")
    return set(params)


def _property(client: Client, method: str, params: Any) -> Any:
    if not isinstance(params, list) or not params or not isinstance(params[0], str):
        raise RequestError(2, "Invalid request: property name must be a string")
    if params[0] != "combined":
        raise RequestError(0, "Unknown property")
    if method == "GET_PROPERTY":
        return client.combined
    if len(params) != 2 or not isinstance(params[1], bool):
        raise RequestError(1, "Invalid value type: expected Boolean")
    client.combined = params[1]
    return None


# --- HTTP helpers ---------------------------------------------------------------------------------


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _json_response(status: int, body: Any) -> Response:
    data = orjson.dumps(body)
    headers = Headers(
        [("Content-Type", "application/json"), ("Content-Length", str(len(data))), ("Connection", "close")]
    )
    reason = {200: "OK", 400: "Bad Request", 404: "Not Found"}.get(status, "Error")
    return Response(status, reason, headers, data)


def _params(query: str, body: bytes) -> dict:
    """Query string and JSON body merged (the body wins); JSON numbers are read as Decimals, never floats."""
    params: dict[str, Any] = {k: v[-1] for k, v in parse_qs(query).items()}
    if body:
        try:
            data = json.loads(body, parse_float=Decimal)
        except ValueError:
            raise RestError(400, -1100, "The body must be a JSON object") from None
        if not isinstance(data, dict):
            raise RestError(400, -1100, "The body must be a JSON object")
        params.update(data)
    return params


def _decimal_param(params: dict, name: str, default: str) -> str:
    value = params.get(name, default)
    text = str(value) if isinstance(value, Decimal | int) and not isinstance(value, bool) else value
    try:
        valid = isinstance(text, str) and bool(_DECIMAL.fullmatch(text)) and Decimal(text) > 0
    except InvalidOperation:
        valid = False
    if not valid:
        raise RestError(400, -1100, f"Parameter {name!r} must be a positive decimal string")
    return text


# --- running it as a process ----------------------------------------------------------------------


async def serve_until_signalled(
    config: SimulatorConfig,
    host: str = "127.0.0.1",
    port: int = 0,
    ready: Callable[[ExchangeSimulator], None] | None = None,
) -> None:
    """Run the simulator until SIGINT or SIGTERM (the simulate_exchange command)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with ExchangeSimulator(config).running(host, port) as simulator:
        if ready is not None:
            ready(simulator)
        await stop.wait()
    logger.info("exchange simulator stopped")
