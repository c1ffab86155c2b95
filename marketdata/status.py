"""The market-data worker's health, written by the worker and read by /ws/status in any process."""

from __future__ import annotations

from collections.abc import Iterable

from django.core.cache import cache

from realtime import protocol

STATUS_KEY = "marketdata:status"
STATUS_TTL_SECONDS = 30  # no fresh record for this long means no worker is running


def status_record(
    *,
    source: str,
    simulated: bool,
    connected: bool,
    symbols: Iterable[str],
    last_message_at: str | None,
    **extra,
) -> dict:
    """The record /ws/status shows under "market_data"; `updated_at` says how fresh it is."""
    return {
        "source": source,
        "simulated": simulated,
        "connected": connected,
        "symbols": sorted(symbols),
        "last_message_at": last_message_at,
        **extra,
        "updated_at": protocol.now_iso(),
    }


async def awrite_status(record: dict) -> None:
    await cache.aset(STATUS_KEY, record, STATUS_TTL_SECONDS)


def read_status() -> dict:
    return cache.get(STATUS_KEY) or {"connected": False, "worker": "not running"}
