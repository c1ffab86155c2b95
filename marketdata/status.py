"""The market-data worker's health, written by the worker and read by /ws/status in any process."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable

from django.conf import settings
from django.core.cache import cache

from realtime import protocol

STATUS_KEY = "marketdata:status"
STATUS_TTL_SECONDS = 30  # no fresh record for this long means no worker is running
LEADER_KEY = "marketdata:leader"  # which worker leads (several runstream processes, one elected)


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


def leader_record(*, worker: str, fence: int, since: str) -> dict:
    """Who leads: the worker's name (host:pid), its fencing token and when its term began."""
    return {"worker": worker, "fence": fence, "since": since, "updated_at": protocol.now_iso()}


async def awrite_leader(record: dict, ttl: float) -> None:
    """Written by the leader at every lease renewal; it expires with the lease when the leader dies.

    In a thread of its own, not the ORM's one thread (cache.aset's): the lease keeper must never
    queue behind database work that is waiting for a lock.
    """
    await asyncio.to_thread(cache.set, LEADER_KEY, record, ttl)


async def aclear_leader() -> None:
    await asyncio.to_thread(cache.delete, LEADER_KEY)


def read_status() -> dict:
    """The worker's record; with Redis also `leader` (null while no worker leads: a failover is under way)."""
    record = cache.get(STATUS_KEY) or {"connected": False, "worker": "not running"}
    if settings.APP.redis_url:
        record = {**record, "leader": cache.get(LEADER_KEY)}
    return record
