"""What the trading domain offers the WebSocket gateway: each trading channel's snapshot for a user.

Registered with realtime.providers in AccountsConfig.ready(); risk alerts are events, not state, so
that channel has no snapshot. The reads run on accounts.snapshot_pool (threads of their own, one
load in flight per user, a budget of messages a second per user), not on the sync thread every
other database call of the process shares.
"""

from __future__ import annotations

from django.conf import settings

from accounts import selectors
from accounts.snapshot_pool import pool
from realtime import providers


async def orders_snapshot(user_id: int) -> list[dict]:
    """Open orders, and those finished within the recovery window (a client that could not resume)."""
    app = settings.APP
    return await pool.run(
        user_id,
        selectors.order_snapshot_messages,
        user_id=user_id,
        finished_within=app.ws_history_ttl,
        finished_at_most=app.ws_history_size,
    )


async def bot_status_snapshot(user_id: int) -> list[dict]:
    return await pool.run(user_id, selectors.bot_status_messages, user_id=user_id)


async def portfolio_snapshot(user_id: int) -> list[dict]:
    return await pool.run(user_id, _portfolio_messages, user_id=user_id)


def _portfolio_messages(*, user_id: int) -> list[dict]:
    return [selectors.portfolio_message(user_id=user_id)]


def register() -> None:
    providers.register_channel_snapshot("orders", orders_snapshot)
    providers.register_channel_snapshot("bot_status", bot_status_snapshot)
    providers.register_channel_snapshot("portfolio", portfolio_snapshot)
