"""The WebSocket consumers: Channels' hooks, handing every event to the connection's `Session` and its
`Runner` (realtime.session decides, realtime.runner carries it out).

`GatewayConsumer` is a plain `AsyncConsumer` rather than `AsyncWebsocketConsumer` for two reasons:
it listens on two channel layers (trading events on the default layer, market data on the pub/sub
layer), and its dispatch skips the `aclose_old_connections` thread hop that Channels runs before
every handler: the ORM is only reached through providers wrapped in `database_sync_to_async`, which
closes old connections itself, and the hop per market message is what limits fan-out.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from urllib.parse import parse_qs

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from realtime import admission, drain, flow, groups, metrics, protocol, session, wire
from realtime.dispatch import OVERFLOW, dispatch_in_order, dispatch_socket
from realtime.protocol import Endpoint
from realtime.providers import providers
from realtime.registry import Connection
from realtime.runner import Runner

logger = logging.getLogger(__name__)


class GatewayConsumer(AsyncConsumer):
    endpoint: Endpoint
    layer_aliases: tuple[str, ...] = ()

    async def __call__(self, scope, receive, send):
        self.scope, channel_names, receivers = scope, {}, [receive]
        for alias in self.layer_aliases:
            channel_names[alias] = await get_channel_layer(alias).new_channel()
            receivers.append(functools.partial(get_channel_layer(alias).receive, channel_names[alias]))
        loop = asyncio.get_running_loop()
        limits = session.Limits.from_config(settings.APP)
        query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
        self.format = query.get("format", [wire.JSON])[-1]
        self.session = session.Session(
            self.endpoint,
            limits,
            loop.time(),
            batch=query.get("batch", [""])[-1] == "1",
            binary=self.format == wire.MSGPACK,
        )
        conn = Connection(uuid.uuid4().hex, str(self.endpoint), None)
        self.runner = Runner(self.session, conn, send, channel_names, flow.backlog_probe(send), loop)
        ticket = drain.process.enter(self._restart)  # on SIGTERM: an error frame, then close 1012
        try:
            if self.layer_aliases:
                await dispatch_in_order(receivers, self.dispatch, self.layer_messages, 2 * limits.burst)
            else:
                await dispatch_socket(receive, self.dispatch, 2 * limits.burst)
        except StopConsumer:
            pass
        finally:
            await self.runner.end()
            drain.process.leave(ticket)

    async def dispatch(self, message):
        """Route a socket or channel-layer event to its handler (no per-message thread hop)."""
        handler = _EVENT_HANDLERS.get(message["type"])
        if handler is None:
            logger.warning("no handler for event type %s on %s", message["type"], self.endpoint)
            return
        await handler(self, message)

    async def websocket_connect(self, message):
        """Accept first, then admit or refuse: a close before accept hides the code from browsers."""
        auth = self.scope.get("auth")
        await self.runner.send({"type": "websocket.accept", "subprotocol": getattr(auth, "subprotocol", None)})
        if self.format not in wire.FORMATS:
            reason = f"Unknown format {self.format[:20]!r}: use json or msgpack"
            await self.runner.run(self.session.close(protocol.Code.INVALID_MESSAGE, reason))
            return
        refusal = drain.process.refusal() or await admission.admit(self.endpoint, self.scope, self.runner.conn)
        if refusal is not None:
            await self.runner.run(self.session.close(*refusal))
            return
        self.runner.registered = True
        self.runner.write_frame = flow.raw_writer(self.runner.send)  # market frames are framed once
        await self.runner.run(self.session.admitted(self.runner.conn.user_id, getattr(auth, "expires_at", None)))
        metrics.ACTIVE_CONNECTIONS.labels(endpoint=str(self.endpoint)).inc()
        self.runner.start_keepalive()
        if drain.process.draining:  # the drain began while this connection was being admitted
            self._restart()

    async def websocket_receive(self, message):
        """One client frame; a failure on our side (database, Redis) is an error frame, not a close."""
        try:
            enabled = await providers.enabled_symbols()
            await self.runner.run(self.session.receive(message.get("text"), self.runner.loop.time(), enabled))
        except Exception:
            logger.exception("request failed on %s", self.endpoint)
            await self.runner.run(self.session.internal_error())

    async def websocket_overflow(self, message):
        """The client sent frames faster than they could be handled, past the bound: a flood."""
        await self.runner.run(self.session.flooded())

    def _restart(self) -> None:
        """The process drains (SIGTERM): tell the client to reconnect elsewhere, once admitted."""
        if self.runner.registered:
            self.runner.spawn(self.runner.run(self.session.restart()))

    async def websocket_disconnect(self, message):
        raise StopConsumer

    async def layer_message(self, event: dict) -> None:
        """A market update or a trading event from a channel layer, encoded once by its publisher."""
        await self.runner.run(self.session.event(event, self.runner.backlog()))

    async def layer_messages(self, events: list[dict]) -> None:
        """Layer events that were waiting together (one array frame for a ?batch=1 connection)."""
        await self.runner.run(self.session.events(events, self.runner.backlog()))


_EVENT_HANDLERS = {
    "websocket.connect": GatewayConsumer.websocket_connect,
    "websocket.receive": GatewayConsumer.websocket_receive,
    "websocket.disconnect": GatewayConsumer.websocket_disconnect,
    OVERFLOW: GatewayConsumer.websocket_overflow,
    protocol.MARKET_EVENT: GatewayConsumer.layer_message,
    protocol.USER_EVENT: GatewayConsumer.layer_message,
    protocol.REVOKED_EVENT: GatewayConsumer.layer_message,
    protocol.RESTART_EVENT: GatewayConsumer.layer_message,
}


class MarketConsumer(GatewayConsumer):
    """/ws/market: public tickers, trades and order books."""

    endpoint = Endpoint.MARKET  # market data comes through the process's fan-out (realtime.fanout)


class TradingConsumer(GatewayConsumer):
    """/ws/trading: one signed-in user's trading events, plus tickers for chosen symbols."""

    endpoint = Endpoint.TRADING
    layer_aliases = (groups.TRADING_LAYER,)
