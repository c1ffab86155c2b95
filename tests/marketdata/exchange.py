"""Helpers for tests that talk to the in-process exchange simulator over real sockets."""

from __future__ import annotations

import asyncio
import contextlib
import json
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import replace

import orjson
import websockets

from marketdata.simulator import ExchangeSimulator, SimulatorConfig
from tests.support import TIMEOUT

FAST = SimulatorConfig(interval=0.01, ticker_every=5, slow_depth_every=5, trade_chance=0.3, levels=20, seed=7)


@contextlib.asynccontextmanager
async def running_simulator(config: SimulatorConfig = FAST, **changes):
    """A simulator on a free port for the length of a test."""
    async with ExchangeSimulator(replace(config, **changes)).running() as simulator:
        yield simulator


def _http(method: str, url: str, body: dict | None) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


async def http(method: str, url: str, body: dict | None = None) -> tuple[int, dict]:
    """(status, JSON body) of a plain HTTP request, 2xx and 4xx alike."""
    return await asyncio.to_thread(_http, method, url, body)


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
