"""/ws/status says when market data is stale: no feed, no worker, or nothing heard for a while."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from asgiref.sync import async_to_sync
from django.core.cache import cache

from marketdata import status

NOW = datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC)


def stamp(seconds_ago: float) -> str:
    return (NOW - timedelta(seconds=seconds_ago)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def record(connected: bool = True, seconds_ago: float | None = 1.0) -> dict:
    last = stamp(seconds_ago) if seconds_ago is not None else None
    return status.status_record(
        source="simulator", simulated=True, connected=connected, symbols=["BTCUSDT"], last_message_at=last
    )


@pytest.fixture(autouse=True)
def _empty_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.parametrize(
    ("connected", "seconds_ago", "stale"),
    [(True, 1.0, False), (True, status.STALE_AFTER_SECONDS + 1, True), (False, 1.0, True), (True, None, True)],
)
def test_stale_when_disconnected_or_silent_or_never_heard(connected, seconds_ago, stale):
    shown = status.with_freshness(record(connected, seconds_ago), NOW)

    assert shown["stale"] is stale
    assert shown["data_age_seconds"] == seconds_ago


def test_a_live_worker_record_is_shown_with_its_age():
    async_to_sync(status.awrite_status)(record(seconds_ago=2.5))

    shown = status.read_status(NOW)
    assert shown["connected"] is True and shown["stale"] is False and shown["data_age_seconds"] == 2.5


def test_after_the_worker_is_gone_its_source_and_simulated_flag_remain_and_the_data_is_stale():
    async_to_sync(status.awrite_status)(record(seconds_ago=0))
    cache.delete(status.STATUS_KEY)  # what its expiry does once the worker stops writing

    shown = status.read_status(NOW)
    assert shown["worker"] == "not running"
    assert shown["connected"] is False and shown["stale"] is True
    assert shown["simulated"] is True and shown["source"] == "simulator"


def test_with_no_worker_ever_the_status_says_so():
    shown = status.read_status(NOW)

    assert shown == {"connected": False, "worker": "not running", "data_age_seconds": None, "stale": True}
