"""What the trading domain offers the WebSocket gateway: each trading channel's snapshot for a user.

Registered with realtime.providers in AccountsConfig.ready(); risk alerts are events, not state, so
that channel has no snapshot.
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from django.conf import settings

from accounts import selectors
from realtime import providers


@database_sync_to_async
def orders_snapshot(user_id: int) -> list[dict]:
    """Open orders, and those finished within the recovery window (a client that could not resume)."""
    app = settings.APP
    return selectors.order_snapshot_messages(
        user_id=user_id, finished_within=app.ws_history_ttl, finished_at_most=app.ws_history_size
    )


@database_sync_to_async
def bot_status_snapshot(user_id: int) -> list[dict]:
    return selectors.bot_status_messages(user_id=user_id)


@database_sync_to_async
def portfolio_snapshot(user_id: int) -> list[dict]:
    return [selectors.portfolio_message(user_id=user_id)]


def register() -> None:
    providers.register_channel_snapshot("orders", orders_snapshot)
    providers.register_channel_snapshot("bot_status", bot_status_snapshot)
    providers.register_channel_snapshot("portfolio", portfolio_snapshot)
