"""Shared by the client scripts (they run in the interop virtualenv, not the project's)."""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable

SYMBOLS = ("BTCUSDT", "ETHUSDT")
KINDS = ("ticker", "trade", "depth")
TIMEOUT = 45.0  # seconds any awaited event may take on a loaded machine


def urls() -> tuple[str, str]:
    """(REST base URL, stream base URL) from the command line."""
    return sys.argv[1], sys.argv[2]


def control(rest_url: str, action: str, **body) -> dict:
    request = urllib.request.Request(f"{rest_url}/_sim/{action}", data=json.dumps(body).encode(), method="POST")
    with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
        return json.loads(response.read())


def warm_up(rest_url: str, trades: int = 6) -> None:
    """A few trades on every symbol first: a fresh exchange has no history to page through yet."""
    for symbol in SYMBOLS:
        for _ in range(trades):
            control(rest_url, "trade", symbol=symbol)


def rest(rest_url: str, path: str):
    with urllib.request.urlopen(f"{rest_url}{path}", timeout=TIMEOUT) as response:
        return json.loads(response.read())


class Seen:
    """Stream events counted per (symbol, kind), and trade ids, from any thread; waits until a condition holds."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self.trade_ids: set[int] = set()
        self._changed = threading.Condition()

    def add(self, symbol: str, kind: str, trade_id: int | str | None = None) -> None:
        with self._changed:
            self.counts[(symbol.upper(), kind)] += 1
            if trade_id is not None:
                self.trade_ids.add(int(trade_id))
            self._changed.notify_all()

    def wait(self, what: str, predicate: Callable[[Seen], bool], timeout: float = TIMEOUT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self), timeout):
                raise AssertionError(f"timed out waiting for {what}; seen {dict(self.counts)}")

    def wait_all(self, kinds=KINDS) -> None:
        self.wait(f"{kinds} for {SYMBOLS}", lambda seen: all(seen.counts[(s, k)] for s in SYMBOLS for k in kinds))

    def count(self, symbol: str, kind: str) -> int:
        with self._changed:
            return self.counts[(symbol, kind)]


def subscriptions(rest_url: str) -> dict[str, set[str]]:
    """Each open stream connection's URL path and what the exchange has it subscribed to."""
    return {c["path"]: set(c["subscriptions"]) for c in rest(rest_url, "/_sim/state")["connections"]}


def marker_trade(rest_url: str, seen: Seen, symbol: str) -> None:
    """Print a trade now and wait for the client to receive it: everything sent before it is in."""
    trade_id = control(rest_url, "trade", symbol=symbol)["trade"]["t"]
    seen.wait(f"marker trade {trade_id}", lambda s: trade_id in s.trade_ids)


def check_unsubscribed(seen: Seen, rest_url: str, gone: str = "ETHUSDT", alive: str = "BTCUSDT") -> dict:
    """After an UNSUBSCRIBE of `gone`'s trades: the exchange dropped that stream, nothing more of it
    arrives, and `alive`'s trades still do. Returns the exchange's subscriptions per connection."""
    gone_stream, alive_stream = f"{gone.lower()}@trade", f"{alive.lower()}@trade"
    give_up = deadline()
    while any(gone_stream in streams for streams in subscriptions(rest_url).values()):
        assert not give_up(), f"the exchange still sends {gone_stream}: {subscriptions(rest_url)}"
        time.sleep(0.05)  # the UNSUBSCRIBE is in flight; the exchange says when it is done only here
    marker_trade(rest_url, seen, alive)  # frames sent before the unsubscription are all in
    before = seen.count(gone, "trade")
    control(rest_url, "trade", symbol=gone)
    marker_trade(rest_url, seen, alive)  # sent after the trade of `gone`: that one would be in by now
    assert seen.count(gone, "trade") == before, f"{gone_stream} still arrives after the unsubscribe"
    listening = subscriptions(rest_url)
    assert any(alive_stream in streams for streams in listening.values()), listening
    return {path: sorted(streams) for path, streams in listening.items()}


def done(library: str, **facts) -> None:
    print("INTEROP-OK " + json.dumps({"library": library, **facts}, default=str))


def deadline(seconds: float = TIMEOUT) -> Callable[[], bool]:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end
