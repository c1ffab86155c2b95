"""Helpers for tests that talk to the in-process exchange simulator over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
import websockets

from marketdata.exchange_server import ExchangeSimulator, SimulatorConfig
from tests.support import TIMEOUT

ROOT = Path(__file__).resolve().parents[2]
LISTENING = re.compile(r"exchange simulator listening on (ws://\S+) \(REST (http://\S+)\)")
FAST = SimulatorConfig(interval=0.01, ticker_every=5, slow_depth_every=5, trade_chance=0.3, levels=20, seed=7)


@contextlib.asynccontextmanager
async def running_simulator(config: SimulatorConfig = FAST, **changes):
    """A simulator on a free port for the length of a test."""
    async with ExchangeSimulator(replace(config, **changes)).running() as simulator:
        yield simulator


def _http(method: str, url: str, body: dict | None, headers: dict[str, str]) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    headers = {"Content-Type": "application/json", **headers}
    request = urllib.request.Request(url, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def http(
    method: str, url: str, body: dict | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict]:
    """(status, JSON body) of a plain HTTP request, 2xx and 4xx alike."""
    return await asyncio.to_thread(_http, method, url, body, headers or {})


async def connect(url: str):
    return await websockets.connect(url, open_timeout=TIMEOUT)


async def recv_json(ws, timeout: float = TIMEOUT) -> dict:
    async with asyncio.timeout(timeout):
        return orjson.loads(await ws.recv())


async def recv_until(ws, predicate: Callable[[dict], bool], timeout: float = TIMEOUT) -> dict:
    """The first JSON frame matching `predicate`; frames before it are passed over."""
    async with asyncio.timeout(timeout):
        while True:
            frame = orjson.loads(await ws.recv())
            if predicate(frame):
                return frame


def payload_of(frame: dict) -> dict:
    """The event payload of a combined or raw frame."""
    return frame["data"] if "stream" in frame else frame


@dataclass
class ExchangeProcess:
    """`python manage.py simulate_exchange` in a subprocess, its output read line by line."""

    process: subprocess.Popen
    ws_url: str = ""
    rest_url: str = ""
    lines: list[str] = field(default_factory=list)
    _queue: queue.Queue = field(default_factory=queue.Queue)
    _ended: bool = False

    def read_until(self, pattern: re.Pattern, timeout: float) -> re.Match:
        """The first output line matching `pattern` (every line read is kept in `lines`)."""
        while True:
            try:
                line = self._queue.get(timeout=timeout)
            except queue.Empty:
                raise TimeoutError(f"simulate_exchange printed no {pattern.pattern!r}: {self.lines}") from None
            if line is None:
                self._ended = True
                raise RuntimeError(f"simulate_exchange exited ({self.process.wait()}): {self.lines}")
            self.lines.append(line)
            if match := pattern.search(line):
                return match

    def stop(self, timeout: float) -> list[str]:
        """SIGTERM, wait for the exit, and every line it printed."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)
        while not self._ended and (line := self._queue.get(timeout=timeout)) is not None:
            self.lines.append(line)
        self._ended = True
        return self.lines


@contextlib.contextmanager
def exchange_process(*args: str, env: dict[str, str] | None = None, timeout: float = 60) -> Iterator[ExchangeProcess]:
    """The command on a free port (its listening line says which), stopped at the end of the block."""
    command = [sys.executable, "manage.py", "simulate_exchange", "--port", "0", *args]
    process = subprocess.Popen(
        command, cwd=ROOT, env=env if env is not None else dict(os.environ), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    exchange = ExchangeProcess(process)

    def pump() -> None:
        for line in process.stdout:
            exchange._queue.put(line.rstrip("\n"))
        exchange._queue.put(None)

    threading.Thread(target=pump, daemon=True).start()
    try:
        exchange.ws_url, exchange.rest_url = exchange.read_until(LISTENING, timeout).groups()
        yield exchange
    finally:
        exchange.stop(timeout)
