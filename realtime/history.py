"""Bounded, recoverable history per key: where a trading event (or a market trade) gets its `seq`.

A key is one user's trading channel (`user_key`) or one market trade stream (`trades_key`). Each key
has an epoch and a counter. `append` assigns the next seq and stores the encoded message in the
same atomic step, so two publishers in different processes (a REST request in one daphne, a fill in
the worker) can never produce the same or a skipped seq. A client that remembers `(epoch, seq)`
gets exactly what it missed from `since`, or None when that cannot be served.

With REDIS_URL the history lives in Redis (one hash with the epoch and the counter, one stream with
the events; a Lua script does increment + XADD + MAXLEN + TTL at once, for one key or for all keys
of a batch in one call); without it, in process memory (the embedded single-process mode), with the
same semantics.

The window: the last `WS_HISTORY_SIZE` events of a key that are at most `WS_HISTORY_TTL` seconds
old. A key untouched for `WS_HISTORY_TTL` seconds is forgotten whole.

The epoch rule: a key's epoch is created with its counter (HSETNX) the first time the key is used
after it did not exist, and lives and dies with the counter. Whenever the counter is lost (Redis
flushed, restarted without persistence, the key expired, a new embedded process) the next use
creates a new random epoch, so a position from before can never be mistaken for one in the new
count; its `since` answers None (the caller sends `recovered: false` and the snapshot).
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

from django.conf import settings

from realtime import protocol, script_args
from realtime.redis_client import PerLoop, async_client


@dataclass(frozen=True)
class Position:
    epoch: str
    seq: int  # the last seq stored under the key; 0 when none yet

    def as_dict(self) -> dict:
        """As the `positions` entries of a `subscribed` ack carry it."""
        return {"epoch": self.epoch, "seq": self.seq}


class Appended(NamedTuple):
    """A stored message (a tuple: the worker makes thousands a second, a frozen dataclass costs more)."""

    epoch: str
    seq: int
    text: str  # the encoded message with its `seq`, ready for every socket


def user_key(user_id: int | str, channel: str) -> str:
    """The history of one user's trading channel ("orders", "risk_alerts", ...)."""
    return f"user.{user_id}.{channel}"


def trades_key(symbol: str) -> str:
    """The history of one symbol's market trades."""
    return f"trades.{symbol.upper()}"


def encode_with_seq(message: dict, seq: int) -> str:
    """The message encoded once, with `seq` as its last field (what every store keeps and returns)."""
    return with_seq(_body(message), seq)


def with_seq(body: str, seq: int) -> str:
    """An encoded JSON object with `"seq":N` added last. The Redis script builds the same text."""
    return f'{body[:-1]},"seq":{seq}}}'


seq_of = protocol.seq_of  # realtime.protocol owns where `seq` stands in an encoded message


def _body(message: dict) -> str:
    if "seq" in message:
        raise ValueError("the history assigns `seq`; the message must not carry one")
    if not message:
        raise ValueError("an empty message has nothing to store")
    return protocol.encode(message)


def _new_epoch() -> str:
    return _new_epochs(1)[0]


def _new_epochs(count: int) -> list[str]:
    """`count` fresh epochs (16 hex digits each) from one read of the system's randomness."""
    pool = os.urandom(8 * count).hex()
    return [pool[16 * i : 16 * (i + 1)] for i in range(count)]


# --- in memory (embedded mode) ------------------------------------------------------------------


@dataclass
class _Key:
    epoch: str
    seq: int = 0
    touched: float = 0.0
    events: deque = field(default_factory=deque)  # (seq, stored at, text), oldest first


class MemoryHistory:
    """One process's history. Never awaits inside; the lock is for sync callers whose
    `async_to_sync` runs on a loop of its own in another thread."""

    SWEEP_EVERY = 1000  # appends between sweeps of keys nobody touched for the TTL

    def __init__(self, size: int, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.size, self.ttl, self._clock = size, ttl, clock
        self._keys: dict[str, _Key] = {}
        self._lock = threading.Lock()
        self._appends = 0

    def __len__(self) -> int:
        """Keys held (expired ones included until the next sweep)."""
        return len(self._keys)

    def _sweep(self) -> None:
        """Forget keys untouched for the TTL, as Redis expires them: users who left cost nothing."""
        oldest = self._clock() - self.ttl
        for key in [k for k, entry in self._keys.items() if entry.touched < oldest]:
            del self._keys[key]

    def _get(self, key: str, *, create: bool) -> _Key | None:
        now = self._clock()
        entry = self._keys.get(key)
        if entry is not None and now - entry.touched > self.ttl:
            del self._keys[key]  # untouched for the TTL: forgotten, as Redis expires the keys
            entry = None
        if entry is None and create:
            entry = self._keys[key] = _Key(epoch=_new_epoch(), events=deque(maxlen=self.size))
        if entry is not None and create:
            entry.touched = now
        return entry

    async def append(self, key: str, message: dict) -> Appended:
        return self._append_body(key, _body(message))

    async def append_many(self, items: list[tuple[str, dict]]) -> list[Appended]:
        """`append` of each (key, message), in order; nothing is stored if one message is refused."""
        bodies = [(key, _body(message)) for key, message in items]
        return [self._append_body(key, body) for key, body in bodies]

    def _append_body(self, key: str, body: str) -> Appended:
        with self._lock:
            self._appends += 1
            if self._appends % self.SWEEP_EVERY == 0:
                self._sweep()
            entry = self._get(key, create=True)
            entry.seq += 1
            text = with_seq(body, entry.seq)
            entry.events.append((entry.seq, entry.touched, text))
            return Appended(entry.epoch, entry.seq, text)

    async def position(self, key: str) -> Position:
        with self._lock:
            entry = self._get(key, create=True)
            return Position(entry.epoch, entry.seq)

    async def since(self, key: str, epoch: str, seq: int) -> list[str] | None:
        with self._lock:
            entry = self._get(key, create=False)
            return None if entry is None else self._range(key, epoch, seq, entry.seq)

    async def read_range(self, key: str, epoch: str, after_seq: int, up_to_seq: int) -> list[str] | None:
        with self._lock:
            return self._range(key, epoch, after_seq, up_to_seq)

    def _range(self, key: str, epoch: str, after_seq: int, up_to_seq: int) -> list[str] | None:
        entry = self._get(key, create=False)
        if entry is None or not _well_formed(epoch, after_seq) or not _well_formed(epoch, up_to_seq):
            return None
        if not _servable(entry.epoch, entry.seq, epoch, after_seq, up_to_seq):
            return None
        if after_seq == up_to_seq:
            return []
        oldest = self._clock() - self.ttl
        found = [(seq, at, text) for seq, at, text in entry.events if after_seq < seq <= up_to_seq]
        if len(found) != up_to_seq - after_seq or found[0][1] < oldest:
            return None  # trimmed by size or too old
        return [text for _seq, _at, text in found]


def _well_formed(epoch: object, seq: object) -> bool:
    """A position as a client may send it: a string epoch and a whole seq (bool is not one)."""
    return isinstance(epoch, str) and isinstance(seq, int) and not isinstance(seq, bool)


def _servable(stored_epoch: str, last: int, epoch: str, after_seq: int, up_to_seq: int) -> bool:
    return stored_epoch == epoch and 0 <= after_seq <= up_to_seq <= last


def _chunks(by_key: dict[str, list[int]], size: int) -> list[list[tuple[str, list[int]]]]:
    """Each key's message indexes, in order, cut into calls of at most `size` messages in all."""
    calls: list[list[tuple[str, list[int]]]] = [[]]
    room = size
    for key, indexes in by_key.items():
        while indexes:
            if room == 0:
                calls.append([])
                room = size
            part, indexes = indexes[:room], indexes[room:]
            calls[-1].append((key, part))
            room -= len(part)
    return calls if calls[0] else []


# --- Redis --------------------------------------------------------------------------------------

# The append, of one key or of a batch of keys at once (the worker's trades of every symbol in one
# call). Its arguments are few whatever the batch (redis-py packs each argument in Python, which cost
# the worker more than the script itself; realtime.script_args): size, ttl, each key's meta hash and
# stream names (packed), the keys' fresh epochs (space-separated), the number of each key's messages
# (comma-separated), and all the encoded messages, key after key, joined by newlines (compact JSON
# never holds a raw newline). A key's messages get consecutive seqs in their order.
# Returns one string: for each key its epoch and its first message's seq, space-separated.
# A new epoch drops any stream left from the old count, so XADD's ids start again at 1-0.
_APPEND = (
    script_args.LUA_SPLIT
    + """
local size, ttl = ARGV[1], ARGV[2]
local names, epochs = split(ARGV[3], ARGV[4]), {}
for epoch in string.gmatch(ARGV[5], '%S+') do
  epochs[#epochs + 1] = epoch
end
local bodies, from = ARGV[7], 1
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
local reply, k = {}, 0
for count in string.gmatch(ARGV[6], '%d+') do
  k = k + 1
  count = tonumber(count)
  local meta, stream, epoch = names[2 * k - 1], names[2 * k], epochs[k]
  if redis.call('HSETNX', meta, 'epoch', epoch) == 1 then
    redis.call('DEL', stream)
  else
    epoch = redis.call('HGET', meta, 'epoch')
  end
  local first = redis.call('HINCRBY', meta, 'seq', count) - count + 1
  for i = 1, count do
    local seq = first + i - 1
    local stop = string.find(bodies, '\\n', from, true) or (#bodies + 1)
    local text = string.sub(bodies, from, stop - 2) .. ',"seq":' .. seq .. '}'
    redis.call('XADD', stream, 'MAXLEN', size, seq .. '-0', 't', ms, 'm', text)
    from = stop + 1
  end
  redis.call('EXPIRE', meta, ttl)
  redis.call('EXPIRE', stream, ttl)
  reply[k] = epoch .. ' ' .. first
end
return table.concat(reply, ' ')
"""
)
# Messages per append call: a backlog after an outage (thousands of trades) does not hold Redis long.
APPEND_CHUNK = 1000

# KEYS: meta hash, stream. ARGV: a fresh epoch, ttl.
_POSITION = """
if redis.call('HSETNX', KEYS[1], 'epoch', ARGV[1]) == 1 then
  redis.call('DEL', KEYS[2])
  redis.call('HSET', KEYS[1], 'seq', 0)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
return redis.call('HMGET', KEYS[1], 'epoch', 'seq')
"""

# KEYS: meta hash, stream. ARGV: epoch, after seq, up-to seq ('' for the last), ttl.
# Returns nil when the range cannot be served whole, else the texts in order.
_RANGE = """
local meta = redis.call('HMGET', KEYS[1], 'epoch', 'seq')
if meta[1] ~= ARGV[1] then return false end
local last = tonumber(meta[2] or '0')
local after = tonumber(ARGV[2])
local upto = last
if ARGV[3] ~= '' then upto = tonumber(ARGV[3]) end
if after < 0 or after > upto or upto > last then return false end
if after == upto then return {} end
local entries = redis.call('XRANGE', KEYS[2], (after + 1) .. '-0', upto .. '-0')
if #entries ~= upto - after then return false end
local now = redis.call('TIME')
local ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
if ms - tonumber(entries[1][2][2]) > tonumber(ARGV[4]) * 1000 then return false end
local texts = {}
for i, entry in ipairs(entries) do texts[i] = entry[2][4] end
return texts
"""


_SCRIPTS = {"append": _APPEND, "position": _POSITION, "range": _RANGE}


class RedisHistory:
    """The history of every process, in Redis: `hist:{key}:m` (epoch, seq) and `hist:{key}:s` (events)."""

    def __init__(self, url: str, size: int, ttl: int, prefix: str = "hist") -> None:
        self.size, self.ttl = size, ttl
        self._url, self._prefix = url, prefix
        self._scripts_per_loop: PerLoop[dict] = PerLoop(self._new_scripts)

    def _keys(self, key: str) -> tuple[str, str]:
        # The braces keep a key's two names in one hash slot. A batch's append spans many keys: the
        # deployment is one Redis server (or a Sentinel-watched master), never a Redis Cluster.
        return f"{self._prefix}:{{{key}}}:m", f"{self._prefix}:{{{key}}}:s"

    def _new_scripts(self) -> dict:
        client = async_client(self._url, decode_responses=True)
        return {name: client.register_script(source) for name, source in _SCRIPTS.items()}

    def _scripts(self) -> dict:
        """This event loop's scripts (EVALSHA, loaded on first use), bound to its own client."""
        return self._scripts_per_loop.get()

    async def append(self, key: str, message: dict) -> Appended:
        return (await self.append_many([(key, message)]))[0]

    async def append_many(self, items: list[tuple[str, dict]]) -> list[Appended]:
        """`append` of each (key, message), in order, in one script call (the worker's trades of a tick).

        A key's messages get consecutive seqs, as one by one. A batch of more than APPEND_CHUNK
        messages takes several calls, one after the other; a key cut by the chunk boundary goes on
        in the next call, so its seqs stay in order (consecutive unless another publisher appends to
        that key in between, as with single appends; a symbol's trades have only the worker).
        """
        bodies = [_body(message) for _key, message in items]
        by_key: dict[str, list[int]] = {}  # key -> the indexes of its messages, in order
        for index, (key, _message) in enumerate(items):
            by_key.setdefault(key, []).append(index)
        appended: list[Appended | None] = [None] * len(items)
        for call in _chunks(by_key, APPEND_CHUNK):
            await self._append_call(call, bodies, appended)
        return appended

    async def _append_call(
        self, call: list[tuple[str, list[int]]], bodies: list[str], appended: list[Appended | None]
    ) -> None:
        """One script call for `call`'s keys; each of their messages' Appended goes to its index."""
        names = script_args.pack(name for key, _indexes in call for name in self._keys(key))
        epochs = " ".join(_new_epochs(len(call)))
        counts = ",".join([str(len(indexes)) for _key, indexes in call])
        texts = "\n".join([bodies[i] for _key, indexes in call for i in indexes])
        if texts.count("\n") != sum(len(indexes) for _key, indexes in call) - 1:
            # A raw newline inside a body would shift every later message onto the wrong key and seq.
            raise ValueError("an encoded message holds a raw newline: it cannot go to the append script")
        reply = (await self._scripts()["append"](args=[self.size, self.ttl, *names, epochs, counts, texts])).split()
        for (_key, indexes), epoch, first in zip(call, reply[::2], reply[1::2], strict=True):
            for seq, index in enumerate(indexes, start=int(first)):
                appended[index] = Appended(epoch, seq, with_seq(bodies[index], seq))

    async def position(self, key: str) -> Position:
        epoch, seq = await self._scripts()["position"](keys=self._keys(key), args=[_new_epoch(), self.ttl])
        return Position(epoch, int(seq or 0))

    async def since(self, key: str, epoch: str, seq: int) -> list[str] | None:
        return await self._range(key, epoch, seq, "")

    async def read_range(self, key: str, epoch: str, after_seq: int, up_to_seq: int) -> list[str] | None:
        if not _well_formed(epoch, up_to_seq):
            return None
        return await self._range(key, epoch, after_seq, str(up_to_seq))

    async def _range(self, key: str, epoch: str, after_seq: int, up_to: str) -> list[str] | None:
        if not _well_formed(epoch, after_seq):
            return None
        texts = await self._scripts()["range"](keys=self._keys(key), args=[epoch, after_seq, up_to, self.ttl])
        return None if texts is None else list(texts)


History = MemoryHistory | RedisHistory
_history: History | None = None


def get_history() -> History:
    """The process's history store: Redis with REDIS_URL, memory otherwise."""
    global _history
    if _history is None:
        app = settings.APP
        if app.redis_url:
            _history = RedisHistory(app.redis_url, app.ws_history_size, app.ws_history_ttl)
        else:
            _history = MemoryHistory(app.ws_history_size, app.ws_history_ttl)
    return _history


def set_history(store: History | None) -> None:
    """Use this store from now on (a test process publishing onto a stack's Redis); None: from settings."""
    global _history
    _history = store
