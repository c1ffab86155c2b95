"""Reads of market-data tables. Sync (ORM); async callers wrap them in database_sync_to_async."""

from __future__ import annotations

from marketdata.models import Symbol


def symbol_enabled_names() -> list[str]:
    return list(Symbol.objects.filter(enabled=True).order_by("name").values_list("name", flat=True))
