"""A live system (exchange, worker, daphne on Redis) for the operator CLI's tests."""

from __future__ import annotations

import pytest

from tests.tools import live

REDIS_DB = 15  # its own database: not the integration tests' (9), the benchmark's (11) or the browser tests' (14)


@pytest.fixture(scope="module")
def live_system(tmp_path_factory):
    """Module-scoped: Redis pub/sub (the market layer) ignores database numbers, so a worker left
    running would feed its prices into other stacks' gateways."""
    try:
        system = live.start(tmp_path_factory.mktemp("live-tools"), REDIS_DB)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield system
    system.stop()
