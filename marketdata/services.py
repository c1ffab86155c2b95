"""Writes to market-data tables. Sync (ORM); async callers wrap them in database_sync_to_async."""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal

from django.db import transaction

from marketdata.assets import split_symbol
from marketdata.known_symbols import KNOWN_SYMBOLS
from marketdata.models import Symbol
from marketdata.normalize import SymbolInfo

# What a row holds until real filters reach it (the model's defaults): anything passes.
_PLACEHOLDER = {"step_size": Decimal("0.00000001"), "tick_size": Decimal("0.00000001"), "min_notional": Decimal(0)}


@transaction.atomic
def symbol_seed_defaults(*, names: Iterable[str]) -> int:
    """Create enabled rows for the configured symbols when the table is empty; returns how many were created.

    Once the table has rows the admin owns it: a disabled or deleted symbol is never re-created here.
    """
    if Symbol.objects.exists():
        return 0
    rows = [_new_row(name) for name in dict.fromkeys(n.upper() for n in names)]
    Symbol.objects.bulk_create(rows, ignore_conflicts=True)  # another process may seed at the same time
    return len(rows)


@transaction.atomic
def symbol_seed_demo(*, names: Iterable[str]) -> list[str]:
    """Make sure each named symbol exists, with the shipped filters when it never had real ones.

    For `seed_demo`: missing rows are created enabled; a row still holding the placeholder filters
    (a database seeded before filters were shipped) gets them. A row with filters of its own, from
    `sync_symbols` or the admin, is left alone. Returns the names created or given filters.
    """
    changed = []
    for name in dict.fromkeys(n.upper() for n in names):
        row = Symbol.objects.select_for_update().filter(name=name).first()
        if row is None:
            _new_row(name).save()
            changed.append(name)
        elif name in KNOWN_SYMBOLS and _has_placeholder_filters(row):
            _apply_filters(row, KNOWN_SYMBOLS[name])
            row.save()
            changed.append(name)
    return changed


def _new_row(name: str) -> Symbol:
    row = Symbol(name=name, enabled=True)
    if name in KNOWN_SYMBOLS:
        _apply_filters(row, KNOWN_SYMBOLS[name])
    else:
        row.base_asset, row.quote_asset = split_symbol(name)
    return row


def _has_placeholder_filters(row: Symbol) -> bool:
    return not row.base_asset and all(Decimal(getattr(row, field)) == value for field, value in _PLACEHOLDER.items())


@transaction.atomic
def symbol_sync(*, infos: Iterable[SymbolInfo], wanted: Iterable[str], add_all: bool = False) -> dict[str, list[str]]:
    """Bring Symbol rows in line with the exchange's list.

    Known and wanted symbols get the exchange's filters; wanted ones that trade are enabled; any row
    whose symbol no longer trades (or is gone) is disabled. With `add_all`, every other trading
    symbol is added disabled, for an admin to enable: thousands of streams are not for everyone.
    """
    exchange = {info.name: info for info in infos}
    wanted = {name.upper() for name in wanted}
    summary: dict[str, list[str]] = {"enabled": [], "disabled": [], "added": [], "updated": []}
    for row in Symbol.objects.select_for_update():
        info = exchange.get(row.name)
        if info is None or not info.trading:
            if row.enabled:
                row.enabled = False
                summary["disabled"].append(row.name)
        else:
            _apply_filters(row, info)
            summary["updated"].append(row.name)
        row.save()
    existing = set(Symbol.objects.values_list("name", flat=True))
    for name, info in sorted(exchange.items()):
        if name in existing or not info.trading or not (add_all or name in wanted):
            continue
        row = Symbol(name=name, enabled=name in wanted)
        _apply_filters(row, info)
        row.save()
        summary["added" if not row.enabled else "enabled"].append(name)
    return summary


def _apply_filters(row: Symbol, info: SymbolInfo) -> None:
    row.base_asset, row.quote_asset = info.base_asset, info.quote_asset
    row.step_size, row.tick_size, row.min_notional = info.step_size, info.tick_size, info.min_notional
