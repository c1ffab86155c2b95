"""A leader lease in Redis with a fencing token: at most one worker leads at a time.

The lease is one key, `SET NX PX` with the holder's name and its token as value; the token comes
from an `INCR`'d counter, so every term has a larger one than the term before. The holder renews
it with a compare-and-renew (Lua: extend the expiry only if the value is still its own) well
inside the TTL, and deletes it the same way when it stops, so a standby takes over at once.

The holder trusts its lease only until `renewed_at + ttl * SAFETY` by its own monotonic clock,
counted from when the renewal was *sent*: it stops leading before Redis can hand the lease to
another worker, even if its renewals silently stop arriving. `LeaseTerm` is that pure reckoning.
"""

from __future__ import annotations

from dataclasses import dataclass

SAFETY = 0.8  # the holder gives up at 80% of the TTL: a margin for clock drift and slow replies
RENEWALS_PER_TTL = 3  # renew every third of the TTL: two renewals may fail before the lease is in doubt

# KEYS: lease, counter. ARGV: holder, ttl ms, floor. Returns the new token, or 0 if the lease is held.
_ACQUIRE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then
  return 0
end
local token = redis.call('INCR', KEYS[2])
local floor = tonumber(ARGV[3])
if token <= floor then
  token = floor + 1
  redis.call('SET', KEYS[2], token)
end
redis.call('SET', KEYS[1], ARGV[1] .. '|' .. token, 'PX', ARGV[2])
return token
"""

# KEYS: lease. ARGV: the holder's value, ttl ms. 1 if renewed, 0 if the lease is not ours (any more).
_RENEW = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('PEXPIRE', KEYS[1], ARGV[2])
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""


@dataclass(frozen=True)
class LeaseTiming:
    ttl: float  # seconds

    @property
    def renew_every(self) -> float:
        return self.ttl / RENEWALS_PER_TTL

    @property
    def trusted_for(self) -> float:
        return self.ttl * SAFETY

    @property
    def poll_every(self) -> float:
        """How often a standby tries to take the lease: a dead leader is replaced within ttl + this."""
        return min(1.0, self.ttl / 5)


@dataclass(frozen=True)
class LeaseTerm:
    """The holder's own view of its lease: which token, and until when it may act on it."""

    token: int
    valid_until: float  # monotonic seconds

    @classmethod
    def started(cls, token: int, sent_at: float, timing: LeaseTiming) -> LeaseTerm:
        return cls(token, sent_at + timing.trusted_for)

    def renewed(self, sent_at: float, timing: LeaseTiming) -> LeaseTerm:
        """Renewed by a request sent at `sent_at`: Redis extended it no earlier than that."""
        return LeaseTerm(self.token, max(self.valid_until, sent_at + timing.trusted_for))

    def expired(self, now: float) -> bool:
        return now >= self.valid_until

    def next_renewal(self, last_sent: float, now: float, timing: LeaseTiming) -> float:
        """Seconds to wait before the next renewal: on schedule, but never past the term's end."""
        return max(0.0, min(last_sent + timing.renew_every, self.valid_until) - now)


def value_of(holder: str, token: int) -> str:
    return f"{holder}|{token}"


def parse_value(value: str | bytes | None) -> tuple[str, int] | None:
    """(holder, token) from the lease key's value; None when nobody holds it."""
    if value is None:
        return None
    text = value.decode() if isinstance(value, bytes) else value
    holder, sep, token = text.rpartition("|")
    if not sep or not token.isdigit():
        return None
    return holder, int(token)


class RedisLease:
    """The lease operations on a redis.asyncio client (see realtime.redis_client.async_client)."""

    def __init__(self, client, *, holder: str, timing: LeaseTiming, prefix: str = "tg:worker") -> None:
        if "|" in holder:
            raise ValueError("a holder name may not contain '|'")
        self.client = client
        self.holder = holder
        self.timing = timing
        self.lease_key = f"{prefix}:lease"
        self.counter_key = f"{prefix}:fence"

    @property
    def _ttl_ms(self) -> int:
        return int(self.timing.ttl * 1000)

    async def acquire(self, *, floor: int = 0) -> int | None:
        """Take the lease if nobody holds it; its token is above `floor` (the database's high-water mark,
        so a Redis that lost the counter in a failover never hands out a token already used)."""
        token = await self.client.eval(_ACQUIRE, 2, self.lease_key, self.counter_key, self.holder, self._ttl_ms, floor)
        return int(token) or None

    async def renew(self, token: int) -> bool:
        return bool(await self.client.eval(_RENEW, 1, self.lease_key, value_of(self.holder, token), self._ttl_ms))

    async def release(self, token: int) -> bool:
        return bool(await self.client.eval(_RELEASE, 1, self.lease_key, value_of(self.holder, token)))

    async def holder_now(self) -> tuple[str, int] | None:
        return parse_value(await self.client.get(self.lease_key))
