"""The market-data worker's health, written by the worker and read by /ws/status in any process."""

from __future__ import annotations

from django.core.cache import cache

STATUS_KEY = "marketdata:status"
STATUS_TTL_SECONDS = 30  # no fresh record for this long means no worker is running


def write_status(record: dict) -> None:
    cache.set(STATUS_KEY, record, STATUS_TTL_SECONDS)


async def awrite_status(record: dict) -> None:
    await cache.aset(STATUS_KEY, record, STATUS_TTL_SECONDS)


def read_status() -> dict:
    return cache.get(STATUS_KEY) or {"connected": False, "worker": "not running"}
