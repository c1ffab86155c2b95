"""Reads of market-data tables. Sync (ORM); async callers wrap them in database_sync_to_async."""

from __future__ import annotations

from marketdata.models import Symbol


def symbol_enabled_names() -> list[str]:
    return list(Symbol.objects.enabled().order_by("name").values_list("name", flat=True))


def symbol_enabled_get(*, name: str) -> Symbol | None:
    """The enabled Symbol of that name, or None."""
    return Symbol.objects.enabled().filter(name=name).first()


def symbol_table_seeded() -> bool:
    return Symbol.objects.exists()
