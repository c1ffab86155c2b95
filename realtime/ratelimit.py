"""Per-connection flood control: a token bucket, and a policy that turns repeated floods into a close."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum


class Verdict(Enum):
    ALLOW = "allow"
    REFUSE = "refuse"  # answer with a 4029 error frame, do nothing else
    CLOSE = "close"  # the client kept flooding after being told: close with 4029


@dataclass(slots=True)
class TokenBucket:
    """`rate` tokens a second, at most `burst` saved up. Time is passed in, so it is testable."""

    rate: float
    burst: int
    tokens: float = field(init=False)
    updated: float | None = field(default=None, init=False)

    def __post_init__(self) -> None:
        self.tokens = float(self.burst)

    def take(self, now: float) -> bool:
        if self.updated is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False


@dataclass(slots=True)
class FloodGuard:
    """Refuse messages over the bucket; close once `strikes` refusals happen before the bucket refills."""

    bucket: TokenBucket
    strikes: int = 10
    refused: int = field(default=0, init=False)

    def check(self, now: float) -> Verdict:
        if self.bucket.take(now):
            if self.bucket.tokens >= self.bucket.burst - 1:
                self.refused = 0  # a full bucket again means the client calmed down
            return Verdict.ALLOW
        self.refused += 1
        return Verdict.CLOSE if self.refused >= self.strikes else Verdict.REFUSE


def flood_guard(rate: float, burst: int, strikes: int = 10) -> FloodGuard:
    return FloodGuard(bucket=TokenBucket(rate=rate, burst=burst), strikes=strikes)
