"""Balances: reading them under lock as ledger.Funds and writing them back, in the caller's transaction.

Rows are created on first use (the quote asset with STARTING_CASH, anything else with 0) and locked
in asset order, so two writers touching the same user's assets queue instead of deadlocking.
"""

from __future__ import annotations

from decimal import Decimal

from django.db import IntegrityError, transaction

from accounts.ledger import Funds
from accounts.models import Balance
from accounts.money import ZERO
from accounts.portfolio import CASH_CURRENCY, STARTING_CASH


def _starting(asset: str) -> Decimal:
    return STARTING_CASH if asset == CASH_CURRENCY else ZERO


def _ensure(user_id: int, assets: set[str]) -> None:
    existing = set(Balance.objects.filter(owner_id=user_id, asset__in=assets).values_list("asset", flat=True))
    for asset in sorted(assets - existing):
        try:
            with transaction.atomic():  # a concurrent first use may create it first: that row is as good
                Balance.objects.create(owner_id=user_id, asset=asset, free=_starting(asset))
        except IntegrityError:
            pass


def balances_lock(*, user_id: int, assets: set[str]) -> dict[str, Balance]:
    """The user's balance rows for these assets, created if missing, locked for this transaction."""
    _ensure(user_id, assets)
    rows = Balance.objects.select_for_update().filter(owner_id=user_id, asset__in=assets).order_by("asset")
    return {row.asset: row for row in rows}


def funds_of(balance: Balance) -> Funds:
    return Funds(balance.asset, balance.free, balance.locked)


def balance_save(balance: Balance, funds: Funds) -> None:
    """Write a changed Funds back onto its locked row."""
    if funds.asset != balance.asset:
        raise ValueError(f"funds of {funds.asset} written to the {balance.asset} balance")
    if (balance.free, balance.locked) == (funds.free, funds.locked):
        return
    balance.free, balance.locked = funds.free, funds.locked
    balance.save(update_fields=["free", "locked", "updated_at"])


def balances_ensure(*, user_id: int) -> None:
    """Give a user the starting quote balance now (seeded users, so the page shows it at once)."""
    _ensure(user_id, {CASH_CURRENCY})
