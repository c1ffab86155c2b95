"""Writes to market-data tables. Sync (ORM); async callers wrap them in database_sync_to_async."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from marketdata.assets import split_symbol
from marketdata.models import Symbol


@transaction.atomic
def symbol_seed_defaults(*, names: Iterable[str]) -> int:
    """Create enabled rows for the configured symbols when the table is empty; returns how many were created.

    Once the table has rows the admin owns it: a disabled or deleted symbol is never re-created here.
    """
    if Symbol.objects.exists():
        return 0
    rows = []
    for name in dict.fromkeys(n.upper() for n in names):
        base, quote = split_symbol(name)
        rows.append(Symbol(name=name, base_asset=base, quote_asset=quote, enabled=True))
    Symbol.objects.bulk_create(rows, ignore_conflicts=True)  # another process may seed at the same time
    return len(rows)
