"""Writes, one module per entity: orders, fills, bots, risk, portfolio, balances.

Every service is keyword-only and atomic, named `<entity>_<action>`, and importable from here
(`from accounts import services; services.order_place(...)`). The events a change causes are
published to its user only, with transaction.on_commit, so nobody hears of a change that was
rolled back. The lock order every service keeps is in _common.py.
"""

from accounts.services.balances import balances_ensure, balances_lock
from accounts.services.bots import (
    bot_create,
    bot_grid_counter,
    bot_pause,
    bot_run_due,
    bot_start,
    bot_stop,
    bot_update,
    bot_validate,
    bots_run_due,
)
from accounts.services.fills import order_fill, orders_match_many, orders_match_trade, orders_match_trades
from accounts.services.orders import order_cancel, order_place, orders_cancel_all
from accounts.services.portfolio import portfolio_publish, portfolios_publish
from accounts.services.risk import risk_limit_check, risk_limit_set, risk_limits_check

__all__ = [
    "balances_ensure",
    "balances_lock",
    "bot_create",
    "bot_grid_counter",
    "bot_pause",
    "bot_run_due",
    "bot_start",
    "bot_stop",
    "bot_update",
    "bot_validate",
    "bots_run_due",
    "order_cancel",
    "order_fill",
    "order_place",
    "orders_cancel_all",
    "orders_match_many",
    "orders_match_trade",
    "orders_match_trades",
    "portfolio_publish",
    "portfolios_publish",
    "risk_limit_check",
    "risk_limit_set",
    "risk_limits_check",
]
