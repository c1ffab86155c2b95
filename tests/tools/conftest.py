"""A live system (exchange, worker, daphne on Redis) for the operator CLI's tests."""

from __future__ import annotations

import pytest

from tests.tools import live

# Databases of its own, not the integration tests' (8, 9), the benchmark's (11) or the browser tests'
# (14, 12); the first one no other test run on this machine holds is used.
REDIS_DBS = (15, 13)


@pytest.fixture(scope="module")
def live_system(tmp_path_factory):
    """Module-scoped: Redis pub/sub (the market layer) ignores database numbers, so a worker left
    running would feed its prices into other stacks' gateways."""
    try:
        system = live.start(tmp_path_factory.mktemp("live-tools"), REDIS_DBS)
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield system
    system.stop()
