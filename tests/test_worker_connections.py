"""The worker process's own settings: it keeps its database connections
(tradingsite.worker.keep_database_connections) and tunes its garbage collector (tune_garbage_collector)."""

from __future__ import annotations

import gc

import pytest

from tradingsite import worker


class Handler:
    """What the function reads of django.db.connections: the aliases and their settings."""

    def __init__(self, **settings: dict):
        self.settings = settings

    def __iter__(self):
        return iter(self.settings)


@pytest.fixture
def handler(monkeypatch):
    found = Handler(
        default={"ENGINE": "django.db.backends.sqlite3", "CONN_MAX_AGE": 0, "OPTIONS": {"timeout": 20}},
        pooled={"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 0, "OPTIONS": {"pool": {"max_size": 4}}},
        chosen={"ENGINE": "django.db.backends.postgresql", "CONN_MAX_AGE": 60, "OPTIONS": {}},
    )
    monkeypatch.setattr(worker, "connections", found)
    return found


def test_a_connection_nobody_keeps_is_kept_with_health_checks(handler):
    worker.keep_database_connections()

    assert handler.settings["default"]["CONN_MAX_AGE"] == worker.WORKER_CONN_MAX_AGE
    assert handler.settings["default"]["CONN_HEALTH_CHECKS"] is True


def test_a_pool_and_an_age_set_explicitly_are_left_alone(handler):
    worker.keep_database_connections()

    assert handler.settings["pooled"]["CONN_MAX_AGE"] == 0  # Django refuses a kept connection with a pool
    assert "CONN_HEALTH_CHECKS" not in handler.settings["pooled"]
    assert handler.settings["chosen"]["CONN_MAX_AGE"] == 60


def test_the_worker_command_keeps_its_connections_before_it_runs(monkeypatch):
    from tradingsite.management.commands import runstream

    calls = []
    monkeypatch.setattr(runstream, "keep_database_connections", lambda: calls.append("kept"))
    monkeypatch.setattr(runstream, "tune_garbage_collector", lambda: calls.append("tuned"))
    monkeypatch.setattr(runstream.asyncio, "run", lambda coroutine: (coroutine.close(), calls.append("ran")))

    runstream.Command().handle(stale_after=30.0)

    assert calls == ["tuned", "kept", "ran"]


def test_the_worker_scans_young_objects_rarely_and_keeps_what_it_loaded_out_of_full_scans(monkeypatch):
    frozen = []
    monkeypatch.setattr(worker.gc, "freeze", lambda: frozen.append(True))  # not this test process's objects
    before = gc.get_threshold()
    try:
        worker.tune_garbage_collector()

        assert gc.get_threshold() == (worker.WORKER_GC_THRESHOLD, *before[1:])
        assert frozen == [True]
    finally:
        gc.set_threshold(*before)
