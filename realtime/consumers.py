"""The WebSocket consumers: thin adapters that carry out what a connection's `Session` decides.

`GatewayConsumer` is a plain `AsyncConsumer` rather than `AsyncWebsocketConsumer` for two reasons:
it listens on two channel layers (trading events on the default layer, market data on the pub/sub
layer), and its dispatch skips the `aclose_old_connections` thread hop that Channels runs before
every handler: the ORM is only reached through providers wrapped in `database_sync_to_async`, which
closes old connections itself, and the hop per market message is what limits fan-out.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
import uuid

from channels.consumer import AsyncConsumer
from channels.exceptions import StopConsumer
from channels.layers import get_channel_layer
from django.conf import settings

from realtime import admission, flow, groups, metrics, protocol, recovery, session
from realtime.dispatch import dispatch_in_order
from realtime.middleware import validate_access_token
from realtime.protocol import Endpoint
from realtime.providers import providers
from realtime.registry import Connection, get_registry

logger = logging.getLogger(__name__)


class GatewayConsumer(AsyncConsumer):
    endpoint: Endpoint
    layer_aliases: tuple[str, ...] = ()

    async def __call__(self, scope, receive, send):
        self.scope, self.base_send, self.channel_names = scope, send, {}
        receivers = [receive]
        for alias in self.layer_aliases:
            self.channel_names[alias] = await get_channel_layer(alias).new_channel()
            receivers.append(functools.partial(get_channel_layer(alias).receive, self.channel_names[alias]))
        self.loop = asyncio.get_running_loop()
        self.session = session.Session(self.endpoint, session.Limits.from_config(settings.APP), self.loop.time())
        self.conn = Connection(uuid.uuid4().hex, str(self.endpoint), None)
        self.backlog = flow.backlog_probe(send)
        self.registered, self.tasks = False, []
        try:
            await dispatch_in_order(receivers, self.dispatch)
        except StopConsumer:
            pass
        finally:
            await self._teardown()

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
        await self.base_send({"type": "websocket.accept", "subprotocol": getattr(auth, "subprotocol", None)})
        refusal = await admission.admit(self.endpoint, self.scope, self.conn)
        if refusal is not None:
            await self.run(self.session.close(*refusal))
            return
        self.registered = True
        self.session.user_id, self.session.expires_at = self.conn.user_id, getattr(auth, "expires_at", None)
        metrics.ACTIVE_CONNECTIONS.labels(endpoint=str(self.endpoint)).inc()
        self.tasks.append(self.loop.create_task(self._keepalive()))

    async def websocket_receive(self, message):
        try:
            enabled = await providers.enabled_symbols()
            await self.run(self.session.receive(message.get("text"), self.loop.time(), enabled))
        except Exception:  # a database or Redis blip: tell this client and keep its connection
            logger.exception("request failed on %s", self.endpoint)
            await self.run(self.session.internal_error())

    async def websocket_disconnect(self, message):
        raise StopConsumer

    async def layer_message(self, event: dict) -> None:
        """A market update or a trading event from a channel layer, encoded once by its publisher."""
        await self.run(self.session.event(event, self.backlog()))

    async def run(self, actions: list[session.Action]) -> None:
        """Carry out a session's actions, in order."""
        for action in actions:
            await _ACTIONS[type(action)](self, action)

    async def _send(self, action: session.Send) -> None:
        self.session.sent(self.loop.time())
        await self.base_send({"type": "websocket.send", "text": action.text})
        metrics.count_out(action.label)

    async def _membership(self, action: session.Join | session.Leave) -> None:
        alias, group = groups.of(action.sub, self.conn.user_id)
        layer = get_channel_layer(alias)
        await (layer.group_add if isinstance(action, session.Join) else layer.group_discard)(
            group, self.channel_names[alias]
        )

    async def _fetch(self, action: session.FetchSnapshots) -> None:
        for sub, texts in (await providers.snapshots(action.subs, self.conn.user_id)).items():
            await self.run(self.session.snapshot(sub, texts, self.backlog()))

    async def _load_positions(self, action: session.LoadPositions) -> None:
        loaded = await recovery.load(action.subs, action.request.since, self.conn.user_id)
        await self.run(self.session.positions_loaded(action, loaded, self.backlog()))

    async def _fill_gap(self, action: session.FillGap) -> None:
        texts = await recovery.gap(action, self.conn.user_id)
        await self.run(self.session.gap_filled(action, texts, self.backlog()))

    async def _check_token(self, action: session.CheckToken) -> None:
        await self.run(self.session.token_checked(*validate_access_token(action.token)))

    async def _count(self, action: session.SubscriptionsChanged) -> None:
        if self.registered:
            await get_registry().set_subscriptions(self.conn.conn_id, action.count)

    async def _drain(self, action: session.Drain) -> None:
        async def drain_forever():
            while (step := self.session.drain(self.backlog())) is not None:
                await (asyncio.sleep(step) if isinstance(step, float) else self._send(step))

        self.tasks.append(self.loop.create_task(drain_forever()))

    async def _close(self, action: session.Close) -> None:
        await self.base_send({"type": "websocket.close", "code": action.code, "reason": action.reason})

    async def _keepalive(self) -> None:
        while not self.session.closed:
            await asyncio.sleep(self.session.next_deadline(self.loop.time(), time.time()))
            await self.run(self.session.tick(self.loop.time(), time.time()))

    async def _teardown(self) -> None:
        for task in self.tasks:
            task.cancel()
        with contextlib.suppress(Exception):
            await self.run(self.session.end())
        if self.registered:
            metrics.ACTIVE_CONNECTIONS.labels(endpoint=str(self.endpoint)).dec()
            metrics.CONNECTION_DURATION.observe(self.loop.time() - self.session.now)
            with contextlib.suppress(Exception):
                await get_registry().release(self.conn.conn_id)


_EVENT_HANDLERS = {
    "websocket.connect": GatewayConsumer.websocket_connect,
    "websocket.receive": GatewayConsumer.websocket_receive,
    "websocket.disconnect": GatewayConsumer.websocket_disconnect,
    protocol.MARKET_EVENT: GatewayConsumer.layer_message,
    protocol.USER_EVENT: GatewayConsumer.layer_message,
}
_ACTIONS = {
    session.Send: GatewayConsumer._send,
    session.Join: GatewayConsumer._membership,
    session.Leave: GatewayConsumer._membership,
    session.FetchSnapshots: GatewayConsumer._fetch,
    session.LoadPositions: GatewayConsumer._load_positions,
    session.FillGap: GatewayConsumer._fill_gap,
    session.CheckToken: GatewayConsumer._check_token,
    session.SubscriptionsChanged: GatewayConsumer._count,
    session.Drain: GatewayConsumer._drain,
    session.Close: GatewayConsumer._close,
}


class MarketConsumer(GatewayConsumer):
    """/ws/market: public tickers, trades and order books."""

    endpoint = Endpoint.MARKET
    layer_aliases = (groups.MARKET_LAYER,)


class TradingConsumer(GatewayConsumer):
    """/ws/trading: one signed-in user's trading events, plus tickers for chosen symbols."""

    endpoint = Endpoint.TRADING
    layer_aliases = (groups.TRADING_LAYER, groups.MARKET_LAYER)
