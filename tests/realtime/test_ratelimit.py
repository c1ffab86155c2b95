"""realtime.ratelimit: token bucket arithmetic and the flood policy, with time passed in."""

from __future__ import annotations

import pytest

from realtime.ratelimit import FloodGuard, TokenBucket, Verdict, flood_guard

START = 1000.0  # an arbitrary monotonic clock reading


def drained(rate: float = 2.0, burst: int = 4, at: float = START) -> TokenBucket:
    """A bucket that has just spent its whole burst at `at`."""
    bucket = TokenBucket(rate=rate, burst=burst)
    for _ in range(burst):
        assert bucket.take(at)
    return bucket


def checks(guard: FloodGuard, count: int, at: float = START) -> list[Verdict]:
    """`count` messages arriving at the same instant."""
    return [guard.check(at) for _ in range(count)]


# --- TokenBucket --------------------------------------------------------------------------------


def test_a_new_bucket_allows_a_full_burst_at_once():
    bucket = TokenBucket(rate=1.0, burst=5)

    assert [bucket.take(START) for _ in range(5)] == [True] * 5


def test_a_bucket_refuses_once_the_burst_is_spent():
    assert drained(burst=5).take(START) is False


def test_a_refused_take_does_not_go_into_debt():
    bucket = drained(rate=1.0, burst=2)
    for _ in range(10):
        bucket.take(START)

    assert bucket.take(START + 1.0) is True  # one second refills one token, whatever was refused


def test_tokens_refill_at_the_rate():
    bucket = drained(rate=2.0, burst=4)

    assert bucket.take(START + 0.5) is True  # 0.5 s * 2/s = 1 token
    assert bucket.take(START + 0.5) is False


def test_a_partial_token_is_not_enough():
    bucket = drained(rate=2.0, burst=4)

    assert bucket.take(START + 0.49) is False
    assert bucket.tokens == pytest.approx(0.98)


def test_partial_refills_add_up():
    bucket = drained(rate=1.0, burst=3)

    assert bucket.take(START + 0.4) is False
    assert bucket.take(START + 0.8) is False
    assert bucket.take(START + 1.0) is True  # 0.4 + 0.4 + 0.2 of a token


def test_refill_is_counted_from_the_last_take():
    bucket = drained(rate=10.0, burst=10)

    assert bucket.take(START + 0.3) is True
    assert bucket.tokens == pytest.approx(2.0)
    assert bucket.take(START + 0.4) is True
    assert bucket.tokens == pytest.approx(2.0)


def test_a_long_idle_time_refills_no_more_than_the_burst():
    bucket = drained(rate=100.0, burst=3)

    allowed = [bucket.take(START + 3600.0) for _ in range(10)]

    assert allowed == [True, True, True] + [False] * 7


def test_tokens_never_exceed_the_burst():
    bucket = TokenBucket(rate=5.0, burst=2)

    bucket.take(START)
    bucket.take(START + 1_000_000.0)

    assert bucket.tokens <= 2


def test_a_steady_client_at_the_rate_is_never_refused():
    bucket = TokenBucket(rate=10.0, burst=2)  # one spare token absorbs float rounding of the clock

    assert all(bucket.take(START + i * 0.1) for i in range(1000))


def test_a_client_just_over_the_rate_is_eventually_refused():
    bucket = TokenBucket(rate=10.0, burst=5)

    results = [bucket.take(START + i * 0.09) for i in range(200)]

    assert False in results


# --- FloodGuard ---------------------------------------------------------------------------------


def test_messages_within_the_rate_are_allowed():
    guard = flood_guard(rate=10.0, burst=20)

    assert set(checks(guard, 20)) == {Verdict.ALLOW}


def test_a_message_past_the_rate_is_refused():
    guard = flood_guard(rate=10.0, burst=3, strikes=5)

    assert checks(guard, 4) == [Verdict.ALLOW] * 3 + [Verdict.REFUSE]


def test_the_connection_is_closed_after_the_strikes_are_used_up():
    guard = flood_guard(rate=1.0, burst=2, strikes=3)

    assert checks(guard, 5) == [Verdict.ALLOW, Verdict.ALLOW, Verdict.REFUSE, Verdict.REFUSE, Verdict.CLOSE]


def test_a_client_that_keeps_flooding_after_close_is_still_told_to_close():
    guard = flood_guard(rate=1.0, burst=1, strikes=2)

    assert checks(guard, 6)[2:] == [Verdict.CLOSE] * 4


def test_the_default_policy_allows_ten_refusals_before_closing():
    guard = flood_guard(rate=1.0, burst=1)

    verdicts = checks(guard, 11)

    assert verdicts[0] is Verdict.ALLOW
    assert verdicts[1:10] == [Verdict.REFUSE] * 9
    assert verdicts[10] is Verdict.CLOSE


def test_calming_down_until_the_bucket_refills_resets_the_strikes():
    guard = flood_guard(rate=1.0, burst=2, strikes=3)
    assert checks(guard, 4) == [Verdict.ALLOW, Verdict.ALLOW, Verdict.REFUSE, Verdict.REFUSE]

    assert guard.check(START + 60.0) is Verdict.ALLOW  # the bucket is full again
    assert guard.refused == 0
    assert checks(guard, 3, at=START + 60.0) == [Verdict.ALLOW, Verdict.REFUSE, Verdict.REFUSE]


def test_a_short_pause_does_not_forgive_earlier_refusals():
    guard = flood_guard(rate=1.0, burst=4, strikes=3)
    assert checks(guard, 6) == [Verdict.ALLOW] * 4 + [Verdict.REFUSE] * 2

    assert guard.check(START + 1.0) is Verdict.ALLOW  # one token back, far from full
    assert guard.check(START + 1.0) is Verdict.CLOSE


def test_a_refused_message_never_counts_against_a_later_allowed_one():
    guard = flood_guard(rate=2.0, burst=2, strikes=100)
    checks(guard, 50)

    assert guard.check(START + 0.5) is Verdict.ALLOW


def test_flood_guard_builds_a_full_bucket_with_the_given_settings():
    guard = flood_guard(rate=3.0, burst=7, strikes=4)

    assert guard.bucket.rate == 3.0
    assert guard.bucket.burst == 7
    assert guard.bucket.tokens == 7
    assert guard.strikes == 4
    assert guard.refused == 0


def test_a_guard_never_closes_a_client_that_stays_within_the_rate():
    guard = flood_guard(rate=10.0, burst=20, strikes=1)

    verdicts = {guard.check(START + i * 0.1) for i in range(10_000)}

    assert verdicts == {Verdict.ALLOW}
