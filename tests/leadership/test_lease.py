"""The lease: the holder's own reckoning (pure) and the Redis operations (against the real Redis)."""

from __future__ import annotations

import uuid

import pytest

from leadership.lease import LeaseTerm, LeaseTiming, RedisLease, parse_value, value_of
from tests.integration import harness

TIMING = LeaseTiming(ttl=6.0)


def test_renewals_come_well_inside_the_ttl():
    assert TIMING.renew_every == 2.0
    assert TIMING.trusted_for < TIMING.ttl
    assert TIMING.poll_every <= 1.0


def test_a_term_is_trusted_for_less_than_the_ttl_from_when_the_request_was_sent():
    term = LeaseTerm.started(7, sent_at=100.0, timing=TIMING)
    assert term.token == 7
    assert not term.expired(100.0 + TIMING.trusted_for - 0.01)
    assert term.expired(100.0 + TIMING.trusted_for)
    assert term.expired(100.0 + TIMING.ttl)  # never trusted as long as Redis keeps it


def test_a_renewal_extends_the_term_from_when_it_was_sent_not_answered():
    term = LeaseTerm.started(7, sent_at=100.0, timing=TIMING).renewed(sent_at=102.0, timing=TIMING)
    assert term.valid_until == 102.0 + TIMING.trusted_for


def test_a_late_answer_to_an_old_renewal_never_shortens_the_term():
    term = LeaseTerm.started(7, sent_at=100.0, timing=TIMING)
    assert term.renewed(sent_at=99.0, timing=TIMING).valid_until == term.valid_until


def test_the_next_renewal_is_on_schedule_but_never_after_the_term_ends():
    term = LeaseTerm.started(7, sent_at=100.0, timing=TIMING)
    assert term.next_renewal(last_sent=100.0, now=100.5, timing=TIMING) == pytest.approx(1.5)
    assert term.next_renewal(last_sent=100.0, now=103.0, timing=TIMING) == 0.0
    # renewals failing: the keeper wakes at the term's end to step down, not later
    late = LeaseTerm(7, valid_until=101.0)
    assert late.next_renewal(last_sent=100.0, now=100.5, timing=TIMING) == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        (value_of("host-a:12", 9), ("host-a:12", 9)),
        (b"host|b:3|41", ("host|b:3", 41)),
        (None, None),
        ("garbage", None),
        ("host:1|x", None),
    ],
)
def test_the_lease_value_names_the_holder_and_its_token(value, parsed):
    assert parse_value(value) == parsed


def test_a_holder_name_with_the_separator_is_refused():
    with pytest.raises(ValueError, match="may not contain"):
        RedisLease(None, holder="a|b", timing=TIMING)


# --- against Redis (database 10, which no test flushes; keys of this test's own) -----------------


@pytest.fixture
async def redis_leases():
    if not harness.redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379 (the lease tests use it)")
    from realtime.redis_client import async_client

    client = async_client("redis://127.0.0.1:6379/10")
    prefix = f"test-lease-{uuid.uuid4().hex}"

    def lease(holder: str, ttl: float = 5.0) -> RedisLease:
        return RedisLease(client, holder=holder, timing=LeaseTiming(ttl), prefix=prefix)

    yield lease, client
    await client.delete(f"{prefix}:lease", f"{prefix}:fence")
    await client.aclose()


async def test_only_one_worker_gets_the_lease(redis_leases):
    lease, _ = redis_leases
    first, second = lease("a"), lease("b")
    token = await first.acquire()
    assert token == 1
    assert await second.acquire() is None
    assert await first.holder_now() == ("a", 1)


async def test_the_holder_renews_and_others_cannot(redis_leases):
    lease, client = redis_leases
    first, second = lease("a"), lease("b")
    token = await first.acquire()
    assert await first.renew(token)
    assert not await second.renew(token)  # same token, other holder
    assert not await first.renew(token + 1)
    assert 0 < await client.pttl(first.lease_key) <= 5000


async def test_every_term_gets_a_larger_token(redis_leases):
    lease, _ = redis_leases
    first, second = lease("a"), lease("b")
    token = await first.acquire()
    assert await first.release(token)
    assert await second.acquire() == token + 1


async def test_a_token_starts_above_the_databases_high_water_mark(redis_leases):
    """Redis may lose the counter in a failover; the database remembers the highest token used."""
    lease, _ = redis_leases
    first = lease("a")
    assert await first.acquire(floor=41) == 42


async def test_a_released_lease_is_free_at_once_but_only_its_holder_releases_it(redis_leases):
    lease, _ = redis_leases
    first, second = lease("a"), lease("b")
    token = await first.acquire()
    assert not await second.release(token)
    assert await first.holder_now() == ("a", token)
    assert await first.release(token)
    assert await first.holder_now() is None


async def test_an_expired_lease_can_be_taken_and_the_old_holder_can_no_longer_renew(redis_leases):
    lease, client = redis_leases
    first, second = lease("a"), lease("b")
    token = await first.acquire()
    await client.delete(first.lease_key)  # what the TTL does when the holder stops renewing
    newer = await second.acquire()
    assert newer == token + 1
    assert not await first.renew(token)
    assert not await first.release(token)
    assert await second.holder_now() == ("b", newer)
