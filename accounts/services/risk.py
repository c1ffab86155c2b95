"""Risk limits: setting them, and checking positions against them as fills and prices move."""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from accounts import risk, selectors
from accounts.models import Position, RiskLimit
from accounts.money import ZERO
from accounts.portfolio import notional
from accounts.services._common import on_commit, positive_amount, tradable_symbol
from realtime import publish

logger = logging.getLogger("accounts.services")


@transaction.atomic
def risk_limit_check(*, user_id: int, symbol: str, price: Decimal) -> bool:
    """Compare the user's position in a symbol with its limit at `price`; alert on a crossing.

    The `breached` flag is read and written under the limit's row lock, so two checks running at
    once (a fill and a price move) send one alert, not two. Returns whether an alert was sent.
    """
    limit = RiskLimit.objects.select_for_update().filter(owner_id=user_id, symbol=symbol).first()
    if limit is None:
        return False
    quantity = Position.objects.filter(owner_id=user_id, symbol=symbol).values_list("quantity", flat=True).first()
    current = notional(quantity or ZERO, price)
    verdict = risk.evaluate(breached=limit.breached, notional=current, limit=limit.max_notional)
    if verdict.breached != limit.breached:
        limit.breached = verdict.breached
        limit.save(update_fields=["breached", "updated_at"])
    if verdict.alert:
        fields = {
            "alert_type": risk.ALERT_TYPE,
            "severity": risk.severity(notional=current, limit=limit.max_notional),
            "message": risk.alert_message(symbol, notional=current, limit=limit.max_notional),
            "limit_value": limit.max_notional,
            "current_value": current,
            "symbol": symbol,
        }
        on_commit(lambda: publish.publish_risk_alert(user_id, **fields))
        logger.info("risk limit crossed for user %s on %s", user_id, symbol)
    return verdict.alert


def risk_limits_check(*, symbol: str, price: Decimal) -> int:
    """Check every limit on a symbol whose owner holds it (or that may re-arm) at a new price."""
    alerts = 0
    for owner_id in selectors.risk_limit_owners_to_check(symbol=symbol):
        try:
            alerts += risk_limit_check(user_id=owner_id, symbol=symbol, price=price)
        except Exception:
            logger.exception("risk check for user %s on %s failed", owner_id, symbol)
    return alerts


@transaction.atomic
def risk_limit_set(*, user_id: int, symbol: str, max_notional: Decimal) -> tuple[RiskLimit, bool]:
    """Create or replace the user's limit for a symbol, then check it at once at the last price.

    Returns (limit, created). A changed limit starts un-breached, so a position already above the
    new limit is announced right away.
    """
    tradable = tradable_symbol(symbol)
    max_notional = positive_amount(max_notional, field="max_notional", what="max_notional")
    limit, created = RiskLimit.objects.select_for_update().get_or_create(
        owner_id=user_id, symbol=tradable.name, defaults={"max_notional": max_notional}
    )
    if not created:
        limit.max_notional = max_notional
        limit.breached = False
        limit.save(update_fields=["max_notional", "breached", "updated_at"])
    price = selectors.market_price(symbol=tradable.name)
    if price is not None:
        risk_limit_check(user_id=user_id, symbol=tradable.name, price=price)
        limit.refresh_from_db()
    return limit, created
