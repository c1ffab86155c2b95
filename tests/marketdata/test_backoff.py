"""Reconnect delays grow exponentially, are fully jittered, and start over after a healthy connection."""

from __future__ import annotations

import itertools
import random

import pytest

from marketdata.backoff import Retry, RetryPolicy, ceilings, full_jitter


def always(value: float):
    return lambda: value


def test_ceilings_double_until_the_maximum():
    policy = RetryPolicy(initial=1, multiplier=2, maximum=10)

    assert list(itertools.islice(ceilings(policy), 6)) == [1, 2, 4, 8, 10, 10]


def test_ceilings_never_overflow_after_many_failures():
    policy = RetryPolicy(initial=1, multiplier=10, maximum=60)

    assert list(itertools.islice(ceilings(policy), 2000))[-1] == 60


def test_full_jitter_scales_the_ceiling_by_the_random_source():
    policy = RetryPolicy(initial=1, multiplier=2, maximum=8)

    assert list(itertools.islice(full_jitter(policy, always(0.5)), 5)) == [0.5, 1, 2, 4, 4]


def test_full_jitter_stays_between_zero_and_the_ceiling():
    policy = RetryPolicy(initial=0.5, multiplier=2, maximum=30)
    rng = random.Random(7)

    delays = list(itertools.islice(full_jitter(policy, rng.random), 200))

    assert all(0 <= d < c for d, c in zip(delays, ceilings(policy), strict=False))
    assert len(set(delays)) > 150  # jittered, not a fixed schedule


def test_a_limited_policy_gives_up():
    retry = Retry(RetryPolicy(initial=1, max_attempts=2), rand=always(0.5))

    assert [retry.failed(), retry.failed(), retry.failed()] == [0.5, 1, None]


def test_an_unlimited_policy_retries_for_ever():
    retry = Retry(RetryPolicy(initial=1, maximum=4), rand=always(0.99))

    assert all(retry.failed() is not None for _ in range(10_000))


def test_a_connection_that_was_healthy_starts_a_new_series():
    retry = Retry(RetryPolicy(initial=1, multiplier=2, maximum=60, healthy_after=30), rand=always(0.5))
    retry.failed()
    retry.failed()
    retry.failed()

    assert retry.failed(lasted=45) == 0.5
    assert retry.failures == 1


def test_a_short_lived_connection_keeps_backing_off():
    retry = Retry(RetryPolicy(initial=1, multiplier=2, maximum=60, healthy_after=30), rand=always(0.5))
    retry.failed()

    assert retry.failed(lasted=2) == 1
    assert retry.failures == 2


@pytest.mark.parametrize("arguments", [{"initial": 0}, {"initial": 5, "maximum": 1}, {"multiplier": 0.5}])
def test_a_policy_that_would_not_back_off_is_refused(arguments):
    with pytest.raises(ValueError):
        RetryPolicy(**arguments)
