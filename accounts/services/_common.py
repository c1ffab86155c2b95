"""What every service module shares: publishing on commit, input validation, the trading settings.

Locks are always taken in this order, by every service, so writers queue instead of deadlocking:
bot -> user -> order -> balances (by asset name) -> position -> risk limit.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction

from accounts import selectors
from accounts.exceptions import InvalidInput
from accounts.models import Bot, Order
from accounts.money import fits_column, plain
from marketdata.models import Symbol
from realtime import publish

logger = logging.getLogger("accounts.services")

Prices = Mapping[str, Decimal | None]


def on_commit(callback: Callable[[], None]) -> None:
    """Publish after the commit; a failed publish is logged and never undoes the trade."""
    transaction.on_commit(callback, robust=True)


def publish_order(order: Order) -> None:
    fields = selectors.order_update_fields(order)  # taken now: the row may change again in this transaction
    on_commit(lambda: publish.publish_order_update(order.owner_id, **fields))


def publish_bot(bot: Bot, *, prices: Prices | None = None) -> None:
    fields = selectors.bot_status_fields(bot, prices=prices)
    on_commit(lambda: publish.publish_bot_status(bot.owner_id, **fields))


def lock_user(user_id: int) -> None:
    """The per-user lock that makes count limits (open orders, bots) hold under concurrent requests."""
    if connection.vendor != "sqlite":  # SQLite serialises writers anyway
        get_user_model().objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True).first()


def app():
    return settings.APP


# --- validation ----------------------------------------------------------------------------------


def tradable_symbol(name: object) -> Symbol:
    text = name.strip().upper() if isinstance(name, str) else ""
    symbol = selectors.symbol_tradable(name=text) if text else None
    if symbol is None:
        tradable = ", ".join(Symbol.objects.enabled().values_list("name", flat=True)) or "none"
        raise InvalidInput(f"unknown or disabled symbol {name!r}; tradable symbols: {tradable}", field="symbol")
    return symbol


def positive_amount(value: object, *, field: str, what: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput(f"{what} must be a decimal number", field=field)
    if value <= 0:
        raise InvalidInput(f"{what} must be greater than 0", field=field)
    if not fits_column(value):
        raise InvalidInput(
            f"{what} {plain(value)} cannot be stored exactly: use at most 12 decimal places and a value below 10^15",
            field=field,
        )
    return value
