"""The WebSocket consumers: thin adapters between sockets, the channel layers and realtime.protocol.

`GatewayConsumer` is a plain `AsyncConsumer` rather than `AsyncWebsocketConsumer` for two reasons:
it listens on two channel layers (trading events on the default layer, market data on the pub/sub
layer), and its `dispatch` skips the `aclose_old_connections` thread hop that Channels runs before
every handler: this consumer touches the ORM only through `database_sync_to_async`, which closes
old connections itself, and the hop per market message is what limits fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import logging
import time
import uuid

from channels.consumer import AsyncConsumer
from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from marketdata import latest
from realtime import flow, groups, metrics, protocol
from realtime.inbox import Inbox
from realtime.outbox import Kind, Outbox, SlowConsumer
from realtime.protocol import ChannelRequest, Code, Endpoint, Ping, ProtocolError, SymbolRequest
from realtime.ratelimit import Verdict, flood_guard
from realtime.registry import Connection, get_registry
from realtime.symbols import enabled_symbols

logger = logging.getLogger(__name__)


class GatewayConsumer(AsyncConsumer):
    endpoint: Endpoint
    layer_aliases: tuple[str, ...] = ()

    async def __call__(self, scope, receive, send):
        self.scope = scope
        self.base_send = send
        self.channel_names: dict[str, str] = {}
        receivers = [receive]
        for alias in self.layer_aliases:
            layer = get_channel_layer(alias)
            self.channel_names[alias] = await layer.new_channel()
            receivers.append(functools.partial(layer.receive, self.channel_names[alias]))
        self._setup()
        try:
            await dispatch_in_order(receivers, self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._teardown()

    def _setup(self) -> None:
        app = settings.APP
        self.conn = Connection(uuid.uuid4().hex, str(self.endpoint), None)
        self.subscriptions: set[tuple[str, str]] = set()  # (channel or stream, symbol or "")
        self.outbox = Outbox(app.ws_message_queue_size)
        self.backlog = flow.backlog_probe(self.base_send)
        self.flood = flood_guard(app.ws_rate_limit_per_second, app.ws_rate_limit_burst)
        self.loop = asyncio.get_running_loop()
        self.opened_at = self.loop.time()
        self.last_sent = self.opened_at
        self.registered = False
        self.closed = False
        self.tasks: list[asyncio.Task] = []
        self.drainer: asyncio.Task | None = None

    async def dispatch(self, message):
        """Route a socket or channel-layer event to its handler (no per-message thread hop)."""
        handler = getattr(self, message["type"].replace(".", "_"), None)
        if handler is None:
            logger.warning("no handler for event type %s on %s", message["type"], self.endpoint)
            return
        await handler(message)

    # --- socket lifecycle ------------------------------------------------------------------------

    async def websocket_connect(self, message):
        """Accept first, then admit or refuse: a close before accept hides the code from browsers."""
        auth = self.scope.get("auth")
        await self.base_send({"type": "websocket.accept", "subprotocol": getattr(auth, "subprotocol", None)})
        refusal = await self.admit()
        if refusal is not None:
            await self.close_with(*refusal)
            return
        metrics.ACTIVE_CONNECTIONS.labels(endpoint=str(self.endpoint)).inc()
        self.tasks.append(self.loop.create_task(self._keepalive()))

    async def admit(self) -> tuple[int, str] | None:
        """None to admit, or (close code, message)."""
        self.registered = await get_registry().acquire(self.conn, limit=None)
        return None

    async def websocket_disconnect(self, message):
        """The client or the server closed the socket."""
        raise StopConsumer

    async def _teardown(self) -> None:
        self.closed = True
        for task in [*self.tasks, self.drainer]:
            if task is not None:
                task.cancel()
        for stream_or_channel, symbol in list(self.subscriptions):
            with contextlib.suppress(Exception):
                await self._leave(stream_or_channel, symbol)
        if self.registered:
            metrics.ACTIVE_CONNECTIONS.labels(endpoint=str(self.endpoint)).dec()
            metrics.CONNECTION_DURATION.observe(self.loop.time() - self.opened_at)
            with contextlib.suppress(Exception):
                await get_registry().release(self.conn.conn_id)

    async def websocket_receive(self, message):
        """One client frame: flood check, size check, parse, handle."""
        if self.closed:
            return
        verdict = self.flood.check(time.monotonic())
        if verdict is not Verdict.ALLOW:
            await self._flooded(verdict)
            return
        text = message.get("text")
        if text is not None and (len(text) > self._max_bytes or len(text.encode()) > self._max_bytes):
            await self.send_error(ProtocolError(f"Message too large: at most {self._max_bytes} bytes"))
            return
        try:
            request = protocol.parse(text, self.endpoint, settings.APP.ws_max_items_per_request)
            metrics.MESSAGES_IN.labels(type=request.type).inc()
            await self.handle(request)
        except ProtocolError as exc:
            metrics.MESSAGES_IN.labels(type="invalid").inc()
            await self.send_error(exc)
        except Exception:
            # A database or Redis blip: tell this client and keep its connection; it may retry.
            logger.exception("request failed on %s", self.endpoint)
            await self.send_error(ProtocolError("Internal error: the request did not complete; retry", Code.INTERNAL))

    @property
    def _max_bytes(self) -> int:
        return settings.APP.ws_max_message_bytes

    async def _flooded(self, verdict: Verdict) -> None:
        app = settings.APP
        text = f"Rate limit exceeded: at most {app.ws_rate_limit_per_second:g} messages a second"
        if verdict is Verdict.CLOSE:
            await self.close_with(Code.RATE_LIMITED, text + "; closing")
        else:
            await self.send_error(ProtocolError(text + "; this message was ignored", code=Code.RATE_LIMITED))

    # --- requests ---------------------------------------------------------------------------------

    async def handle(self, request: protocol.Request) -> None:
        handler = getattr(self, _REQUEST_HANDLERS.get(type(request), ""), None)
        if handler is None:  # parse() only returns known requests; a new one must be mapped first
            raise ProtocolError(f"Unsupported request {request.type!r}")
        await handler(request)

    async def handle_ping(self, request: Ping) -> None:
        await self.send_message(protocol.pong())

    async def handle_channels(self, request: ChannelRequest) -> None:
        raise ProtocolError(f"Unknown message type {request.type!r} on this endpoint")

    async def handle_symbols(self, request: SymbolRequest) -> None:
        unknown = [s for s in request.symbols if s not in await enabled_symbols()]
        if unknown:
            raise protocol.unknown_symbols_error(unknown)
        wanted = [(str(request.stream), symbol) for symbol in request.symbols]
        if request.subscribe:
            self._check_room(wanted)
            for stream, symbol in wanted:
                await self._join(stream, symbol)
        else:
            for stream, symbol in wanted:
                await self._leave(stream, symbol)
        await self._subscriptions_changed()
        await self.send_message(protocol.symbols_ack(request))
        if request.subscribe and request.stream in protocol.STATE_STREAMS:  # subscribe, then snapshot
            message_type = protocol.MESSAGE_TYPE_OF_STREAM[request.stream]
            for symbol, text in (await latest.asnapshots(str(request.stream), request.symbols)).items():
                await self.deliver(text, Kind.STATE, protocol.conflation_key(message_type, symbol), "snapshot")

    def _check_room(self, wanted: list[tuple[str, str]]) -> None:
        cap = settings.APP.ws_max_subscriptions_per_connection
        added = len(set(wanted) - self.subscriptions)
        if len(self.subscriptions) + added > cap:
            raise ProtocolError(f"Too many subscriptions: at most {cap} per connection; unsubscribe some first")

    async def _join(self, stream_or_channel: str, symbol: str) -> None:
        if (stream_or_channel, symbol) in self.subscriptions:
            return
        alias, group = self._group(stream_or_channel, symbol)
        await get_channel_layer(alias).group_add(group, self.channel_names[alias])
        self.subscriptions.add((stream_or_channel, symbol))
        metrics.SUBSCRIPTIONS.labels(channel=stream_or_channel, symbol=symbol).inc()

    async def _leave(self, stream_or_channel: str, symbol: str) -> None:
        if (stream_or_channel, symbol) not in self.subscriptions:
            return
        self.subscriptions.discard((stream_or_channel, symbol))
        metrics.SUBSCRIPTIONS.labels(channel=stream_or_channel, symbol=symbol).dec()
        alias, group = self._group(stream_or_channel, symbol)
        await get_channel_layer(alias).group_discard(group, self.channel_names[alias])

    def _group(self, stream_or_channel: str, symbol: str) -> tuple[str, str]:
        if symbol:
            return groups.MARKET_LAYER, groups.market(stream_or_channel, symbol)
        return groups.TRADING_LAYER, groups.user(self.conn.user_id, stream_or_channel)

    async def _subscriptions_changed(self) -> None:
        if self.registered:
            await get_registry().set_subscriptions(self.conn.conn_id, len(self.subscriptions))

    # --- events from the channel layers ---------------------------------------------------------

    async def market_message(self, event: dict) -> None:
        """A market update, already encoded once by the worker for every client."""
        key = event.get("key")
        await self.deliver(event["text"], Kind.STATE if key else Kind.DROPPABLE, key, event.get("kind", "market"))

    async def user_message(self, event: dict) -> None:
        """A trading event for this connection's user: never dropped silently."""
        await self.deliver(event["text"], Kind.RELIABLE, None, event.get("kind", "user"))

    # --- sending ------------------------------------------------------------------------------------

    async def send_message(self, message: dict) -> None:
        await self.deliver(protocol.encode(message), Kind.RELIABLE, None, message["type"])

    async def send_error(self, exc: ProtocolError) -> None:
        metrics.ERRORS.labels(code=str(exc.code)).inc()
        await self.send_message(protocol.error_from(exc))

    async def deliver(self, text: str, kind: Kind, key: str | None, label: str) -> None:
        """Write now while the client keeps up; otherwise queue in the bounded outbox."""
        if self.closed:
            return
        if not self.outbox and self.backlog() < flow.HIGH_WATER:
            await self._write(text, label)
            return
        try:
            before = (self.outbox.dropped, self.outbox.conflated)
            self.outbox.put(text, kind, key)
        except SlowConsumer:
            await self._close_slow_consumer()
            return
        self._count_pressure(before, label)
        if self.drainer is None or self.drainer.done():
            self.drainer = self.loop.create_task(self._drain())

    def _count_pressure(self, before: tuple[int, int], label: str) -> None:
        if self.outbox.dropped > before[0]:
            metrics.OUTBOX_DROPS.labels(type=label).inc(self.outbox.dropped - before[0])
        if self.outbox.conflated > before[1]:
            metrics.OUTBOX_CONFLATIONS.labels(type=label).inc(self.outbox.conflated - before[1])

    async def _drain(self) -> None:
        while self.outbox and not self.closed:
            if self.backlog() > flow.LOW_WATER:
                await asyncio.sleep(0.05)  # Twisted gives no async signal for "buffer drained"
                continue
            await self._write(self.outbox.pop(), "queued")

    async def _write(self, text: str, label: str) -> None:
        self.last_sent = self.loop.time()
        await self.base_send({"type": "websocket.send", "text": text})
        metrics.count_out(label)

    async def _close_slow_consumer(self) -> None:
        metrics.SLOW_CONSUMER_CLOSES.inc()
        logger.info("closing slow consumer %s on %s", self.conn.conn_id, self.endpoint)
        self.outbox = Outbox(1)  # release what was queued: the client will reload state
        await self._close(Code.SLOW_CONSUMER, "Client too slow: trading events would be lost; reconnect")

    async def close_with(self, code: int, message: str) -> None:
        """An error frame with the code, then a close with the same code (read by browsers too)."""
        if self.closed:
            return
        metrics.ERRORS.labels(code=str(code)).inc()
        await self._write(protocol.encode(protocol.error(code, message)), "error")
        await self._close(code, message)

    async def _close(self, code: int, reason: str) -> None:
        self.closed = True
        await self.base_send({"type": "websocket.close", "code": code, "reason": reason[:120]})

    # --- keepalive --------------------------------------------------------------------------------

    async def _keepalive(self) -> None:
        """Heartbeat after WS_HEARTBEAT_INTERVAL of silence; close when the access token expires."""
        interval = settings.APP.ws_heartbeat_interval
        while not self.closed:
            due = self.last_sent + interval
            expires = self._expires_in()
            await asyncio.sleep(max(0.0, min(due - self.loop.time(), expires)))
            if self._expires_in() <= 0:
                await self.close_with(Code.AUTH_FAILED, "Token expired: reconnect with a fresh access token")
                return
            if self.loop.time() >= self.last_sent + interval:
                await self.send_message(protocol.heartbeat())

    def _expires_in(self) -> float:
        return float("inf")


async def dispatch_in_order(sources: list, dispatch) -> None:
    """Dispatch events from every source (the socket, the channel layers) one at a time, in arrival order.

    Channels' `await_many_dispatch` creates a task and an `asyncio.wait` per event per connection,
    which profiled as a quarter of the fan-out cost; here each source has one long-lived task that
    feeds a single inbox, and handlers still never run concurrently.
    """
    inbox = Inbox()

    async def pump(source) -> None:
        try:
            while True:
                if inbox.put(await source()):
                    metrics.INBOX_CONFLATIONS.inc()
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a failing source ends the connection, as with Channels
            inbox.put(_Failed(error))

    pumps = [asyncio.create_task(pump(source)) for source in sources]
    try:
        while True:
            event = await inbox.get()
            if isinstance(event, _Failed):
                raise event.error
            await dispatch(event)
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)


@dataclasses.dataclass(frozen=True)
class _Failed:
    error: BaseException


_REQUEST_HANDLERS = {Ping: "handle_ping", SymbolRequest: "handle_symbols", ChannelRequest: "handle_channels"}


class MarketConsumer(GatewayConsumer):
    """/ws/market: public tickers, trades and order books."""

    endpoint = Endpoint.MARKET
    layer_aliases = (groups.MARKET_LAYER,)


class TradingConsumer(GatewayConsumer):
    """/ws/trading: one signed-in user's trading events, plus tickers for chosen symbols."""

    endpoint = Endpoint.TRADING
    layer_aliases = (groups.TRADING_LAYER, groups.MARKET_LAYER)

    async def admit(self) -> tuple[int, str] | None:
        auth = self.scope.get("auth")
        if auth is None or not auth.ok:
            return (getattr(auth, "code", Code.AUTH_FAILED), getattr(auth, "message", "Authentication required"))
        self.conn.user_id = auth.user.pk
        limit = settings.APP.ws_max_connections_per_user
        self.registered = await get_registry().acquire(self.conn, limit=limit)
        if not self.registered:
            return (Code.TOO_MANY_CONNECTIONS, f"Maximum connections exceeded: at most {limit} per user")
        # Every connection of the user, subscribed to anything or not, hears a revocation.
        await self._join_revocations(add=True)
        return None

    async def user_revoked(self, event: dict) -> None:
        """The user was deactivated, deleted or changed password (security.revocation): close with 4002."""
        await self.close_with(Code.USER_INACTIVE, event["message"])

    async def _join_revocations(self, *, add: bool) -> None:
        layer = get_channel_layer(groups.TRADING_LAYER)
        change = layer.group_add if add else layer.group_discard
        await change(groups.user_connections(self.conn.user_id), self.channel_names[groups.TRADING_LAYER])

    async def _teardown(self) -> None:
        if self.registered:
            with contextlib.suppress(Exception):
                await self._join_revocations(add=False)
        await super()._teardown()

    def _expires_in(self) -> float:
        expires_at = getattr(self.scope.get("auth"), "expires_at", None)
        return float("inf") if expires_at is None else expires_at - time.time()

    async def handle_channels(self, request: ChannelRequest) -> None:
        if request.subscribe:
            self._check_room([(channel, "") for channel in request.channels])
            for channel in request.channels:
                await self._join(channel, "")
        else:
            for channel in request.channels:
                await self._leave(channel, "")
        await self._subscriptions_changed()
        await self.send_message(protocol.channels_ack(request.subscribe, request.channels))
        if request.subscribe:
            for channel in request.channels:
                for message in await _trading_snapshot(channel, self.conn.user_id):
                    await self.send_message(message)


# What a new subscriber to a trading channel gets first; risk alerts are events, not state.
_SNAPSHOT_SELECTORS = {
    "orders": "open_order_messages",
    "bot_status": "bot_status_messages",
    "portfolio": "portfolio_message",
}


@database_sync_to_async
def _trading_snapshot(channel: str, user_id: int) -> list[dict]:
    """The current state of a trading channel, sent after joining its group so nothing is missed."""
    name = _SNAPSHOT_SELECTORS.get(channel)
    if name is None:
        return []
    from accounts import selectors  # the trading domain, loaded with the apps

    found = getattr(selectors, name)(user_id=user_id)
    return found if isinstance(found, list) else [found]
