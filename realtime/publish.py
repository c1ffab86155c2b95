"""The only place that calls group_send: market updates from the worker, trading events from services.

Market functions are async (the stream worker is async). The user-event functions are sync because
services call them from `transaction.on_commit` inside the ORM's thread; `async_to_sync` hops back
to the server's event loop when there is one.
"""

from __future__ import annotations

import logging

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from realtime import groups, metrics, protocol

logger = logging.getLogger(__name__)


async def apublish_market(message: dict) -> None:
    """Publish one normalised ticker, trade or orderbook message to its symbol's group."""
    stream = protocol.STREAM_OF_MESSAGE_TYPE[message["type"]]
    event = protocol.market_event(message, conflate=stream in protocol.STATE_STREAMS)
    await get_channel_layer(groups.MARKET_LAYER).group_send(groups.market(stream, message["symbol"]), event)
    metrics.PUBLISHED.labels(kind=message["type"]).inc()


async def apublish_user(user_id: int, channel: str, message: dict) -> None:
    """Publish one trading event to one user's channel group, and to nobody else."""
    await get_channel_layer(groups.TRADING_LAYER).group_send(
        groups.user(user_id, channel), protocol.user_event(message)
    )
    metrics.PUBLISHED.labels(kind=message["type"]).inc()


def publish_user(user_id: int, channel: str, message: dict) -> None:
    async_to_sync(apublish_user)(user_id, channel, message)


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
        groups.user_connections(user_id), {"type": "user.revoked", "message": message}
    )
    metrics.PUBLISHED.labels(kind="user_revoked").inc()
