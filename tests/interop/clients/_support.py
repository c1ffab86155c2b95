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
    """Stream events counted per (symbol, kind), from any thread; waits until a condition holds."""

    def __init__(self) -> None:
        self.counts: Counter = Counter()
        self._changed = threading.Condition()

    def add(self, symbol: str, kind: str) -> None:
        with self._changed:
            self.counts[(symbol.upper(), kind)] += 1
            self._changed.notify_all()

    def wait(self, what: str, predicate: Callable[[Counter], bool], timeout: float = TIMEOUT) -> None:
        with self._changed:
            if not self._changed.wait_for(lambda: predicate(self.counts), timeout):
                raise AssertionError(f"timed out waiting for {what}; seen {dict(self.counts)}")

    def wait_all(self, kinds=KINDS) -> None:
        self.wait(f"{kinds} for {SYMBOLS}", lambda c: all(c[(s, k)] for s in SYMBOLS for k in kinds))

    def count(self, symbol: str, kind: str) -> int:
        with self._changed:
            return self.counts[(symbol, kind)]


def check_unsubscribed(seen: Seen, gone: tuple[str, str], alive: tuple[str, str], more: int = 10) -> None:
    """After the unsubscribe was answered: `alive` keeps arriving, `gone` does not."""
    before = seen.count(*gone)
    alive_before = seen.count(*alive)
    seen.wait(f"{more} more {alive}", lambda c: c[alive] >= alive_before + more)
    assert seen.count(*gone) == before, f"{gone} still arrives after the unsubscribe"


def done(library: str, **facts) -> None:
    print("INTEROP-OK " + json.dumps({"library": library, **facts}, default=str))


def deadline(seconds: float = TIMEOUT) -> Callable[[], bool]:
    end = time.monotonic() + seconds
    return lambda: time.monotonic() > end
