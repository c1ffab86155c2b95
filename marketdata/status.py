"""The market-data worker's health, written by the worker and read by /ws/status in any process."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable
from datetime import UTC, datetime

from django.conf import settings
from django.core.cache import cache

from realtime import protocol

STATUS_KEY = "marketdata:status"
LAST_KEY = "marketdata:status:last"  # kept without expiry: what the feed was when the worker went away
STATUS_TTL_SECONDS = 30  # no fresh record for this long means no worker is running
LEADER_KEY = "marketdata:leader"  # which worker leads (several runstream processes, one elected)
STALE_AFTER_SECONDS = 10.0  # market data older than this is shown as stale (the paper engine's default MAX_PRICE_AGE)


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
    await cache.aset(LAST_KEY, record, None)


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


def read_status(now: datetime | None = None) -> dict:
    """The worker's record with how old its data is; without a live worker, its last record marked so.

    `simulated` and `source` survive the worker (the data on screen is still simulated data), and
    `stale` says whether a client should trust the prices it has: no feed, or nothing for a while.
    """
    record = cache.get(STATUS_KEY)
    if record is None:
        record = {**(cache.get(LAST_KEY) or {}), "connected": False, "worker": "not running"}
    if settings.APP.redis_url:  # which worker leads: null while none does (a failover is under way)
        record = {**record, "leader": cache.get(LEADER_KEY)}
    return with_freshness(record, now or datetime.now(UTC))


def with_freshness(record: dict, now: datetime) -> dict:
    """`data_age_seconds` (since the last frame from the exchange, None if never) and `stale` (pure)."""
    age = None
    if last := record.get("last_message_at"):
        with contextlib.suppress(ValueError):
            age = max(0.0, round((now - datetime.fromisoformat(last.replace("Z", "+00:00"))).total_seconds(), 1))
    stale = not record.get("connected") or age is None or age > STALE_AFTER_SECONDS
    return {**record, "data_age_seconds": age, "stale": stale}
