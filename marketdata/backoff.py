"""Reconnect delays: exponential backoff with full jitter, and the small policy around it. Pure.

Full jitter (a uniform delay between 0 and the exponential ceiling) spreads the reconnects of many
workers after an exchange outage, so they do not all arrive in the same second.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass

RandomSource = Callable[[], float]  # returns a float in [0, 1), like random.random


@dataclass(frozen=True)
class RetryPolicy:
    initial: float = 0.5  # ceiling of the first delay, seconds
    multiplier: float = 2.0
    maximum: float = 30.0  # the ceiling never grows past this
    healthy_after: float = 60.0  # a connection that lasted this long starts the next failure afresh
    max_attempts: int | None = None  # None: retry for ever (a market-data feed should)

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial or self.multiplier < 1:
            raise ValueError("backoff needs 0 < initial <= maximum and multiplier >= 1")


def ceilings(policy: RetryPolicy) -> Iterator[float]:
    """initial, initial*multiplier, ... capped at maximum; multiplied step by step so it never overflows."""
    ceiling = policy.initial
    attempt = 0
    while policy.max_attempts is None or attempt < policy.max_attempts:
        yield ceiling
        ceiling = min(policy.maximum, ceiling * policy.multiplier)
        attempt += 1


def full_jitter(policy: RetryPolicy, rand: RandomSource = random.random) -> Iterator[float]:
    """The delays before each retry: uniform in [0, ceiling)."""
    for ceiling in ceilings(policy):
        yield rand() * ceiling


class Retry:
    """The state of one reconnecting client: how long to wait after this failure, and when to start over."""

    def __init__(self, policy: RetryPolicy | None = None, rand: RandomSource = random.random):
        self.policy = policy or RetryPolicy()
        self._rand = rand
        self._delays = full_jitter(self.policy, rand)
        self.failures = 0

    def failed(self, lasted: float = 0.0) -> float | None:
        """Delay before the next attempt after a failure, or None when the policy gives up.

        `lasted` is how long the failed connection was up: a long-lived one was healthy, so this
        failure is the first of a new series rather than the next of an old one.
        """
        if lasted >= self.policy.healthy_after:
            self.reset()
        self.failures += 1
        return next(self._delays, None)

    def reset(self) -> None:
        self._delays = full_jitter(self.policy, self._rand)
        self.failures = 0
