"""The only place that calls group_send: market updates from the worker, trading events from services.

Market functions are async (the stream worker is async). The user-event functions are sync because
services call them from `transaction.on_commit` inside the ORM's thread; `async_to_sync` hops back
to the server's event loop when there is one.

Sequence numbers. A trading event is first appended to its user's channel history
(realtime.history), which gives it its `seq` and the encoded text carrying it; then that text is
sent. Market trades go through the history of their symbol the same way (recoverable with `since`).
Tickers and order books are state: their `seq` comes from a counter in this process (the worker),
paired with an epoch that is this process's run id (MARKET_EPOCH). The counter of a run starts at
the run's start time in milliseconds, so a later run of the worker continues above an earlier one
(a state stream publishes far fewer than 1000 messages a second) and a client never mistakes the
new run's messages for old ones; within a run it goes up by one per message.
Each message is encoded once; the layer event carries the text plus `seq` and `epoch`, so a
connection can notice a gap or a lost history without parsing the text.
"""

from __future__ import annotations

import collections
import functools
import itertools
import logging
import secrets
import time
from typing import NamedTuple

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime import groups, history, metrics, protocol, script_args

logger = logging.getLogger(__name__)

MARKET_EPOCH = secrets.token_hex(8)  # this process's run of the worker
_market_counters: dict[tuple[str, str], itertools.count] = {}


class MarketFrame(NamedTuple):
    """One market message with its seq, encoded once: what the snapshot cache and the layer carry.
    A tuple: the worker makes thousands a second, and a frozen dataclass costs more."""

    kind: str  # "ticker", "trade", "orderbook"
    symbol: str
    epoch: str
    seq: int
    text: str


def _counter_start() -> int:
    return int(time.time() * 1000)


def _next_market_seq(kind: str, symbol: str) -> int:
    counter = _market_counters.get((kind, symbol))
    if counter is None:
        counter = _market_counters[(kind, symbol)] = itertools.count(_counter_start())
    return next(counter)


async def aprepare_market(message: dict) -> MarketFrame:
    """Give a normalised market message its seq and encode it (trades are stored in their history)."""
    kind, symbol = message["type"], message["symbol"]
    if protocol.STREAM_OF_MESSAGE_TYPE[kind] in protocol.STATE_STREAMS:
        seq = _next_market_seq(kind, symbol)
        return MarketFrame(kind, symbol, MARKET_EPOCH, seq, history.encode_with_seq(message, seq))
    appended = await history.get_history().append(history.trades_key(symbol), message)
    return MarketFrame(kind, symbol, appended.epoch, appended.seq, appended.text)


async def aprepare_market_many(messages: list[dict]) -> list[MarketFrame]:
    """`aprepare_market` of each message, in order; the trades are stored in one round trip."""
    trades = [(history.trades_key(m["symbol"]), m) for m in messages if m["type"] not in _STATE_KINDS]
    appended = iter(await history.get_history().append_many(trades))
    frames = []
    for message in messages:
        kind, symbol = message["type"], message["symbol"]
        if kind in _STATE_KINDS:
            seq = _next_market_seq(kind, symbol)
            frames.append(MarketFrame(kind, symbol, MARKET_EPOCH, seq, history.encode_with_seq(message, seq)))
        else:
            stored = next(appended)
            frames.append(MarketFrame(kind, symbol, stored.epoch, stored.seq, stored.text))
    return frames


_STATE_KINDS = frozenset(
    kind for kind, stream in protocol.STREAM_OF_MESSAGE_TYPE.items() if stream in protocol.STATE_STREAMS
)


def _market_event(frame: MarketFrame) -> tuple[str, dict]:
    """The group a prepared market message goes to, and the layer event that carries it."""
    group, key = _market_route(frame.kind, frame.symbol)
    event = {
        "type": protocol.MARKET_EVENT,
        "text": frame.text,
        "key": key,
        "kind": frame.kind,
        "seq": frame.seq,
        "epoch": frame.epoch,
        "symbol": frame.symbol,
        "group": group,  # a process's one market channel hears many groups (realtime.fanout)
    }
    return group, event


@functools.lru_cache(maxsize=8192)
def _market_route(kind: str, symbol: str) -> tuple[str, str | None]:
    """A kind and symbol's group, and its conflation key when the stream carries state (None for trades).
    The same few hundred pairs, thousands of times a second: worked out once each."""
    stream = protocol.STREAM_OF_MESSAGE_TYPE[kind]
    key = protocol.conflation_key(kind, symbol) if stream in protocol.STATE_STREAMS else None
    return groups.market(stream, symbol), key


async def asend_market(frame: MarketFrame) -> None:
    """Send a prepared market message to its stream and symbol's group."""
    group, event = _market_event(frame)
    await get_channel_layer(groups.MARKET_LAYER).group_send(group, event)
    metrics.PUBLISHED.labels(kind=frame.kind).inc()


async def asend_market_many(frames: list[MarketFrame]) -> None:
    """`asend_market` of each frame, in order: on the Redis pub/sub layer one command per shard (a script
    that PUBLISHes them all), so a batch of a thousand costs a round trip and one reply instead of a thousand."""
    layer = get_channel_layer(groups.MARKET_LAYER)
    sent = [_market_event(frame) for frame in frames]
    if not await _publish_batched(layer, sent):
        for group, event in sent:
            await layer.group_send(group, event)
    # Counted per kind, not per frame: a labelled child is looked up under a lock each time.
    for kind, count in collections.Counter(frame.kind for frame in frames).items():
        metrics.PUBLISHED.labels(kind=kind).inc(count)


# ARGV: the channels and the payloads, each packed into two arguments (realtime.script_args);
# PUBLISHed in order. One command and one reply for a batch: a pipeline of PUBLISHes cost the worker
# 19 us per message against 4 us as a script (measured, 300 messages a batch), and packed arguments
# took the rest of redis-py's per-argument work off. Channels are not keys: the script runs anywhere.
_PUBLISH_ALL = (
    script_args.LUA_SPLIT
    + """
local channels, payloads = split(ARGV[1], ARGV[2]), split(ARGV[3], ARGV[4])
for i = 1, #channels do
  redis.call('PUBLISH', channels[i], payloads[i])
end
return #channels
"""
)
PUBLISH_CHUNK = 1000  # messages per script call: a backlog after an outage does not stall Redis long


async def _publish_batched(layer, sent: list[tuple[str, dict]]) -> bool:
    """What channels_redis's RedisPubSubChannelLayer.group_send does for each, batched per shard
    (4.x internals: its loop layer, shards and their lock). False for another layer: nothing sent."""
    from channels_redis.pubsub import RedisPubSubChannelLayer

    if not isinstance(layer, RedisPubSubChannelLayer):
        return False
    loop_layer = layer._get_layer()
    by_shard: dict[int, tuple[object, list[tuple[str, bytes]]]] = {}
    routes: dict[str, tuple[str, object]] = {}  # group -> its channel and shard, once per batch
    for group, event in sent:
        route = routes.get(group)
        if route is None:
            channel = loop_layer._get_group_channel_name(group)
            route = routes[group] = (channel, loop_layer._get_shard(channel))
        channel, shard = route
        by_shard.setdefault(id(shard), (shard, []))[1].append((channel, layer.serialize(event)))
    for shard, messages in by_shard.values():
        async with shard._lock:
            shard._ensure_redis()
            publish_all = shard._redis.register_script(_PUBLISH_ALL)  # EVALSHA, loading it if the server lacks it
            for start in range(0, len(messages), PUBLISH_CHUNK):
                chunk = messages[start : start + PUBLISH_CHUNK]
                channels = script_args.pack(channel for channel, _payload in chunk)
                payloads = script_args.pack(payload for _channel, payload in chunk)
                await publish_all(args=[*channels, *payloads])
    return True


async def apublish_market(message: dict) -> MarketFrame:
    """Publish one normalised ticker, trade or orderbook message to its symbol's group."""
    frame = await aprepare_market(message)
    await asend_market(frame)
    return frame


async def apublish_user(user_id: int, channel: str, message: dict) -> history.Appended:
    """Store one trading event in its user's channel history, then publish it to that user only.

    Stored first: a connection that sees this event's seq can always fill a gap before it.
    """
    appended = await history.get_history().append(history.user_key(user_id, channel), message)
    event = {
        "type": protocol.USER_EVENT,
        "text": appended.text,
        "kind": message["type"],
        "channel": channel,
        "seq": appended.seq,
        "epoch": appended.epoch,
    }
    await get_channel_layer(groups.TRADING_LAYER).group_send(groups.user(user_id, channel), event)
    metrics.PUBLISHED.labels(kind=message["type"]).inc()
    return appended


def publish_user(user_id: int, channel: str, message: dict) -> history.Appended:
    return async_to_sync(apublish_user)(user_id, channel, message)


def publish_order_update(user_id: int, **fields) -> None:
    publish_user(user_id, "orders", protocol.order_update(**fields))


def publish_risk_alert(user_id: int, **fields) -> None:
    publish_user(user_id, "risk_alerts", protocol.risk_alert(**fields))


def publish_bot_status(user_id: int, **fields) -> None:
    publish_user(user_id, "bot_status", protocol.bot_status(**fields))


def publish_portfolio(user_id: int, **fields) -> None:
    publish_user(user_id, "portfolio", protocol.portfolio(**fields))


def publish_user_revoked(user_id: int, message: str) -> None:
    """Close every /ws/trading connection of a user, on every instance, with 4002 and this message."""
    async_to_sync(get_channel_layer(groups.TRADING_LAYER).group_send)(
        groups.user_connections(user_id), {"type": protocol.REVOKED_EVENT, "message": message}
    )
    metrics.PUBLISHED.labels(kind="user_revoked").inc()
