"""realtime.history: seq assigned where the event is stored, epochs, the window, `since` and gap reads.

Every behaviour is checked on both stores: in memory (embedded mode) and in the real local Redis (the
first free of REDIS_DBS, claimed with the same file lock as the other suites' databases, so whoever
shares one waits for the other; held for this module's few seconds only).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest
import redis

from realtime import history
from tests.integration.harness import claim_redis_db, redis_answers

REDIS_DBS = (10, 15, 13, 14, 12)
ROOT = Path(__file__).resolve().parents[2]
KEY = history.user_key(7, "orders")


def event(number: int) -> dict:
    return {
        "type": "order_update",
        "order_id": str(number),
        "status": "filled",
        "timestamp": "2026-01-01T00:00:00.000Z",
    }


def decoded(texts: list[str]) -> list[dict]:
    return [orjson.loads(text) for text in texts]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def redis_url():
    if not redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379: start it to run the history tests")
    db, lock = claim_redis_db(REDIS_DBS)
    url = f"redis://127.0.0.1:6379/{db}"
    redis.Redis.from_url(url).flushdb()
    try:
        yield url
    finally:
        lock.close()


@pytest.fixture
def fresh_redis(redis_url):
    redis.Redis.from_url(redis_url).flushdb()
    return redis_url


@pytest.fixture(params=["memory", "redis"])
def make_store(request):
    """A factory of stores of one kind: make_store(size=..., ttl=..., prefix=...); stores with
    different prefixes share nothing."""
    if request.param == "memory":
        return lambda size=1000, ttl=900, prefix="hist": history.MemoryHistory(size, ttl)
    url = request.getfixturevalue("fresh_redis")
    return lambda size=1000, ttl=900, prefix="hist": history.RedisHistory(url, size, ttl, prefix)


@pytest.fixture
def store(make_store):
    return make_store()


# --- the encoded text ---------------------------------------------------------------------------


def test_the_text_is_the_message_with_its_seq_added():
    text = history.encode_with_seq(event(1), 42)

    assert orjson.loads(text) == {**event(1), "seq": 42}


def test_a_message_that_already_carries_a_seq_is_refused():
    with pytest.raises(ValueError, match="seq"):
        history.encode_with_seq({**event(1), "seq": 3}, 4)


def test_the_seq_of_a_stored_text_is_read_without_parsing_it():
    assert history.seq_of(history.encode_with_seq(event(1), 1234)) == 1234
    assert history.seq_of('{"type":"ticker","price":"1"}') is None
    assert history.seq_of('{"type":"x","seq":"7"}') is None


def test_keys_name_the_user_and_channel_or_the_symbol():
    assert history.user_key(7, "orders") != history.user_key(8, "orders") != history.user_key(7, "portfolio")
    assert history.trades_key("btcusdt") == history.trades_key("BTCUSDT")


# --- both stores --------------------------------------------------------------------------------


async def test_append_numbers_events_from_one_and_returns_the_text_with_seq(store):
    first = await store.append(KEY, event(1))
    second = await store.append(KEY, event(2))

    assert (first.seq, second.seq) == (1, 2)
    assert first.epoch == second.epoch
    assert orjson.loads(second.text) == {**event(2), "seq": 2}


async def test_append_many_numbers_each_key_in_order_as_single_appends_would(store):
    other = history.user_key(8, "orders")
    await store.append(KEY, event(1))
    appended = await store.append_many([(KEY, event(2)), (other, event(1)), (KEY, event(3))])

    assert [a.seq for a in appended] == [2, 1, 3]
    assert [orjson.loads(a.text) for a in appended] == [
        {**event(2), "seq": 2},
        {**event(1), "seq": 1},
        {**event(3), "seq": 3},
    ]
    assert decoded(await store.since(KEY, appended[0].epoch, 1)) == [{**event(2), "seq": 2}, {**event(3), "seq": 3}]
    assert await store.append_many([]) == []


async def test_append_many_of_one_key_counts_on_from_single_appends_and_back(store):
    other = history.user_key(8, "orders")
    await store.append(KEY, event(1))
    appended = await store.append_many([(KEY, event(n)) for n in range(2, 6)] + [(other, event(1))])
    after = await store.append(KEY, event(6))

    assert [a.seq for a in appended] == [2, 3, 4, 5, 1]
    assert after.seq == 6 and after.epoch == appended[0].epoch
    assert decoded(await store.since(KEY, after.epoch, 0)) == [{**event(n), "seq": n} for n in range(1, 7)]


async def test_a_batch_across_keys_gets_the_seqs_texts_and_epochs_of_appends_one_by_one(make_store):
    keys = [history.user_key(user, "orders") for user in range(5)]
    batched, one_by_one = make_store(prefix="batched"), make_store(prefix="single")
    for store in (batched, one_by_one):
        await store.append(keys[0], event(0))  # one key counts on, the others are new
    items = [(keys[n % 5], event(n)) for n in range(1, 40)]

    appended = await batched.append_many(items)
    expected = [await one_by_one.append(key, message) for key, message in items]

    assert [(a.seq, a.text) for a in appended] == [(e.seq, e.text) for e in expected]
    epochs = {key: (await batched.position(key)).epoch for key in keys}
    assert [a.epoch for a in appended] == [epochs[key] for key, _message in items]
    for key in keys:
        assert await batched.since(key, epochs[key], 0) == await one_by_one.since(
            key, (await one_by_one.position(key)).epoch, 0
        )


async def test_a_batch_keeps_texts_with_newlines_braces_and_other_characters_whole(store):
    odd = {"type": "risk_alert", "message": 'two\nlines, a "quote", {braces}, é and \u2028'}
    appended = await store.append_many([(KEY, odd), (KEY, event(2)), (KEY, odd)])

    assert [orjson.loads(a.text) for a in appended] == [{**odd, "seq": 1}, {**event(2), "seq": 2}, {**odd, "seq": 3}]
    assert await store.since(KEY, appended[0].epoch, 0) == [a.text for a in appended]


def test_a_batch_is_cut_into_calls_of_at_most_the_chunk_keeping_each_keys_order():
    by_key = {"a": [0, 1], "b": [2, 3, 4, 5, 6], "c": [7]}

    assert history._chunks(by_key, 3) == [[("a", [0, 1]), ("b", [2])], [("b", [3, 4, 5])], [("b", [6]), ("c", [7])]]
    assert history._chunks({"a": [0, 1, 2]}, 3) == [[("a", [0, 1, 2])]]
    assert history._chunks({}, 3) == []


async def test_a_batch_over_the_chunk_numbers_on_across_the_calls(fresh_redis, monkeypatch):
    store = history.RedisHistory(fresh_redis, size=2000, ttl=900)
    calls = []
    append_call = store._append_call

    async def counted(call, bodies, appended):
        calls.append(sum(len(indexes) for _key, indexes in call))
        await append_call(call, bodies, appended)

    monkeypatch.setattr(store, "_append_call", counted)
    other = history.user_key(8, "orders")
    items = [(KEY if n % 3 else other, event(n)) for n in range(history.APPEND_CHUNK + 1)]

    appended = await store.append_many(items)

    assert calls == [history.APPEND_CHUNK, 1]
    for key in (KEY, other):
        mine = [a for (k, _message), a in zip(items, appended, strict=True) if k == key]
        assert [a.seq for a in mine] == list(range(1, len(mine) + 1))
        assert {a.epoch for a in mine} == {(await store.position(key)).epoch}
        assert await store.since(key, mine[0].epoch, 0) == [a.text for a in mine]


async def test_a_batch_of_exactly_the_chunk_is_one_call(fresh_redis, monkeypatch):
    store = history.RedisHistory(fresh_redis, size=2000, ttl=900)
    calls = []
    append_call = store._append_call

    async def counted(call, bodies, appended):
        calls.append(call)
        await append_call(call, bodies, appended)

    monkeypatch.setattr(store, "_append_call", counted)

    appended = await store.append_many([(KEY, event(n)) for n in range(history.APPEND_CHUNK)])

    assert len(calls) == 1
    assert [a.seq for a in appended] == list(range(1, history.APPEND_CHUNK + 1))


def test_fresh_epochs_are_distinct_hex_strings_as_token_hex_makes():
    epochs = history._new_epochs(50)

    assert len(set(epochs)) == 50
    assert all(len(e) == 16 and int(e, 16) >= 0 for e in epochs)


async def test_append_many_refuses_a_message_carrying_a_seq_before_storing_any(store):
    with pytest.raises(ValueError, match="seq"):
        await store.append_many([(KEY, event(1)), (KEY, {**event(2), "seq": 5})])
    assert (await store.position(KEY)).seq == 0


async def test_keys_count_separately(store):
    await store.append(KEY, event(1))
    other = await store.append(history.user_key(8, "orders"), event(1))

    assert other.seq == 1


async def test_position_of_an_unused_key_is_zero_and_its_epoch_is_kept_by_the_first_append(store):
    position = await store.position(KEY)
    appended = await store.append(KEY, event(1))

    assert position.seq == 0
    assert appended.epoch == position.epoch
    assert await store.position(KEY) == history.Position(position.epoch, 1)
    assert position.as_dict() == {"epoch": position.epoch, "seq": 0}


async def test_since_returns_exactly_the_missed_events_in_order(store):
    for number in range(1, 6):
        appended = await store.append(KEY, event(number))

    missed = await store.since(KEY, appended.epoch, 2)

    assert [m["seq"] for m in decoded(missed)] == [3, 4, 5]
    assert [m["order_id"] for m in decoded(missed)] == ["3", "4", "5"]


async def test_since_from_zero_returns_everything_kept(store):
    position = await store.position(KEY)
    for number in range(1, 4):
        await store.append(KEY, event(number))

    assert [m["seq"] for m in decoded(await store.since(KEY, position.epoch, 0))] == [1, 2, 3]


async def test_since_the_last_seq_is_an_empty_list_not_a_failure(store):
    appended = await store.append(KEY, event(1))

    assert await store.since(KEY, appended.epoch, 1) == []
    unused = history.user_key(9, "orders")
    assert await store.since(unused, (await store.position(unused)).epoch, 0) == []


async def test_since_with_an_unknown_epoch_cannot_be_served(store):
    await store.append(KEY, event(1))

    assert await store.since(KEY, "not-the-epoch", 0) is None


async def test_since_on_a_key_never_used_cannot_be_served(store):
    assert await store.since(KEY, "some-epoch", 0) is None


@pytest.mark.parametrize("seq", [5, -1, "1", None, True, 1.0])
async def test_since_a_position_that_is_impossible_or_malformed_cannot_be_served(store, seq):
    appended = await store.append(KEY, event(1))

    assert await store.since(KEY, appended.epoch, seq) is None


async def test_a_position_older_than_the_size_window_cannot_be_served(make_store):
    store = make_store(size=3)
    for number in range(1, 6):
        appended = await store.append(KEY, event(number))

    assert await store.since(KEY, appended.epoch, 1) is None  # 2 was trimmed
    assert [m["seq"] for m in decoded(await store.since(KEY, appended.epoch, 2))] == [3, 4, 5]


async def test_read_range_fills_a_gap_and_refuses_what_it_cannot_fill(make_store):
    store = make_store(size=3)
    for number in range(1, 6):
        appended = await store.append(KEY, event(number))

    assert [m["seq"] for m in decoded(await store.read_range(KEY, appended.epoch, 2, 4))] == [3, 4]
    assert await store.read_range(KEY, appended.epoch, 4, 4) == []
    assert await store.read_range(KEY, appended.epoch, 1, 3) is None  # 2 was trimmed
    assert await store.read_range(KEY, appended.epoch, 4, 6) is None  # 6 does not exist yet
    assert await store.read_range(KEY, "other", 3, 4) is None
    assert await store.read_range(KEY, appended.epoch, 3, "4") is None
    assert await store.read_range(KEY, appended.epoch, 4, 3) is None


async def test_a_lost_history_comes_back_with_a_new_epoch(make_store, request):
    store = make_store()
    before = await store.append(KEY, event(1))
    if isinstance(store, history.RedisHistory):
        redis.Redis.from_url(request.getfixturevalue("fresh_redis")).flushdb()  # as after a restart
    else:
        store = make_store()  # a new embedded process

    after = await store.append(KEY, event(2))

    assert after.epoch != before.epoch
    assert after.seq == 1
    assert await store.since(KEY, before.epoch, 1) is None


async def test_a_batch_after_a_key_expired_starts_it_in_a_new_epoch_and_counts_the_others_on(fresh_redis):
    store = history.RedisHistory(fresh_redis, size=10, ttl=900)
    other = history.user_key(8, "orders")
    before = await store.append_many([(KEY, event(1)), (other, event(1)), (KEY, event(2))])
    redis.Redis.from_url(fresh_redis).delete(store._keys(KEY)[0])  # its counter expired; its stream not yet

    after = await store.append_many([(KEY, event(3)), (other, event(2))])

    assert after[0].epoch != before[0].epoch and after[0].seq == 1
    assert (after[1].epoch, after[1].seq) == (before[1].epoch, 2)
    assert decoded(await store.since(KEY, after[0].epoch, 0)) == [{**event(3), "seq": 1}]  # the old stream went
    assert await store.since(KEY, before[0].epoch, 2) is None


async def test_a_batch_after_redis_was_flushed_starts_every_key_in_a_new_epoch(fresh_redis):
    store = history.RedisHistory(fresh_redis, size=10, ttl=900)
    other = history.user_key(8, "orders")
    before = await store.append_many([(KEY, event(1)), (other, event(1))])
    redis.Redis.from_url(fresh_redis).flushdb()

    after = await store.append_many([(KEY, event(2)), (other, event(2)), (other, event(3))])

    assert [a.seq for a in after] == [1, 1, 2]
    assert after[0].epoch != after[1].epoch  # each key has an epoch of its own
    assert {a.epoch for a in after}.isdisjoint({b.epoch for b in before})


# --- time ---------------------------------------------------------------------------------------


async def test_memory_events_older_than_the_ttl_are_not_served():
    clock = Clock()
    store = history.MemoryHistory(size=100, ttl=60, clock=clock)
    first = await store.append(KEY, event(1))
    clock.now += 50
    await store.append(KEY, event(2))
    clock.now += 20  # event 1 is 70 s old, event 2 20 s

    assert await store.since(KEY, first.epoch, 0) is None
    assert [m["seq"] for m in decoded(await store.since(KEY, first.epoch, 1))] == [2]


async def test_memory_key_untouched_for_the_ttl_is_forgotten_with_its_epoch():
    clock = Clock()
    store = history.MemoryHistory(size=100, ttl=60, clock=clock)
    first = await store.append(KEY, event(1))
    clock.now += 61

    assert await store.since(KEY, first.epoch, 1) is None
    assert (await store.position(KEY)).epoch != first.epoch


async def test_memory_forgets_keys_nobody_touched_for_the_ttl():
    clock = Clock()
    store = history.MemoryHistory(size=10, ttl=60, clock=clock)
    for user in range(50):
        await store.append(history.user_key(user, "orders"), event(1))
    clock.now += 61
    for n in range(store.SWEEP_EVERY):
        await store.append(KEY, event(n))

    assert len(store) == 1


async def test_redis_keys_carry_the_ttl(fresh_redis):
    store = history.RedisHistory(fresh_redis, size=10, ttl=300)
    await store.append(KEY, event(1))
    client = redis.Redis.from_url(fresh_redis)

    ttls = [client.ttl(name) for name in client.keys("hist:*")]

    assert len(ttls) == 2
    assert all(0 < ttl <= 300 for ttl in ttls)


async def test_a_batch_gives_every_key_it_touched_the_ttl_and_the_size(fresh_redis):
    store = history.RedisHistory(fresh_redis, size=3, ttl=300)
    other = history.user_key(8, "orders")
    await store.append_many([(KEY, event(n)) for n in range(5)] + [(other, event(1))])
    client = redis.Redis.from_url(fresh_redis)

    ttls = [client.ttl(name) for name in client.keys("hist:*")]

    assert len(ttls) == 4
    assert all(0 < ttl <= 300 for ttl in ttls)
    assert client.xlen(store._keys(KEY)[1]) == 3


async def test_redis_events_older_than_the_ttl_are_not_served(fresh_redis):
    store = history.RedisHistory(fresh_redis, size=10, ttl=1)
    first = await store.append(KEY, event(1))
    await store.append(KEY, event(2))
    await asyncio.sleep(1.2)  # the passing of time is what is tested here, not a synchronisation
    await store.position(KEY)  # keeps the key alive: only the age of the events counts

    assert await store.since(KEY, first.epoch, 0) is None


# --- two publishers -----------------------------------------------------------------------------

PUBLISHER = textwrap.dedent(
    """
    import asyncio, json, sys
    import redis
    from realtime.history import RedisHistory

    url, key, count, start = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

    async def main():
        store = RedisHistory(url, size=2000, ttl=900)
        redis.Redis.from_url(url).blpop([start], timeout=60)  # both start at once
        seqs = []
        for n in range(count):
            appended = await store.append(key, {"type": "order_update", "n": n, "by": sys.argv[5]})
            seqs.append(appended.seq)
        print(json.dumps({"epoch": appended.epoch, "seqs": seqs}))

    asyncio.run(main())
    """
)


def test_two_publishers_in_two_processes_never_share_or_skip_a_seq(fresh_redis):
    start = "history-test-start"
    publishers = [
        subprocess.Popen(
            [sys.executable, "-c", PUBLISHER, fresh_redis, KEY, "500", start, name],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    redis.Redis.from_url(fresh_redis).rpush(start, "go", "go")
    results = [json.loads(p.communicate(timeout=120)[0]) for p in publishers]

    seqs = results[0]["seqs"] + results[1]["seqs"]
    assert sorted(seqs) == list(range(1, 1001))
    assert results[0]["epoch"] == results[1]["epoch"]
    stored = decoded(asyncio.run(history.RedisHistory(fresh_redis, 2000, 900).since(KEY, results[0]["epoch"], 0)))
    assert [m["seq"] for m in stored] == list(range(1, 1001))
    for name, result in zip("ab", results, strict=True):  # each publisher's events kept its own order
        mine = [m for m in stored if m["by"] == name]
        assert [m["n"] for m in mine] == list(range(500))
        assert [m["seq"] for m in mine] == result["seqs"]
