#!/usr/bin/env python3
"""Check a running gateway from the outside: the health endpoint, /ws/market and /ws/trading.

    python tools/websocket_test_client.py --test health
    python tools/websocket_test_client.py --test market
    python tools/websocket_test_client.py --test trading --token ACCESS_JWT
    python tools/websocket_test_client.py --test recovery --token ACCESS_JWT [--orders 3 --symbol BTCUSDT]
    python tools/websocket_test_client.py --test all --token ACCESS_JWT --url https://trading.example.com

Prints every message it receives, one readable line each, then PASS or FAIL per check; exits 0 when
every check passed, 1 when one failed, 2 on a usage error. It needs only `websockets`.
It connects with `?batch=1`: a frame may hold a JSON array of messages, which are taken in order.

`recovery` (not part of `all`: it places real orders for the token's user) subscribes to `orders`,
remembers the position from the ack and the events' `seq`, disconnects, places `--orders` market
orders through REST and waits until they are final, reconnects with `since`, and checks that exactly
the missed order updates arrive, in order, with consecutive `seq` and no duplicate.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
import urllib.error
import urllib.request
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit, urlunsplit

import websockets

DEFAULT_URL = "http://127.0.0.1:8000"
TIMEOUT = 15.0  # seconds any single step may take
MARKET_SYMBOLS = ("BTCUSDT", "ETHUSDT")
TRADING_CHANNELS = ("orders", "risk_alerts", "bot_status", "portfolio")
FINAL_ORDER_STATUSES = frozenset({"filled", "canceled", "rejected"})
TICKER_FIELDS = ("symbol", "price", "price_change", "price_change_percent", "high_price", "low_price", "volume")
CLOSE_CODES = {
    1000: "normal closure",
    1001: "going away",
    1006: "connection lost",
    1011: "server error",
    1012: "service restart",
    4001: "authentication failed: no, invalid or expired token",
    4002: "user not found or inactive",
    4003: "too many connections for this user",
    4004: "invalid message",
    4008: "client too slow",
    4029: "rate limited",
}


class CheckFailed(Exception):
    """One check did not hold; the message says what was expected and what came instead."""


@dataclass(frozen=True)
class Endpoints:
    http: str  # http(s)://host[:port][/prefix]
    ws: str  # ws(s)://host[:port][/prefix]


def endpoints(url: str) -> Endpoints:
    """Both base URLs from whatever the operator gave: http(s)://, ws(s)://, or a bare host:port."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in {"http", "https", "ws", "wss"}:
        raise ValueError(f"--url must start with http://, https://, ws:// or wss://, not {parts.scheme}://")
    secure = scheme in {"https", "wss"}
    path = parts.path.rstrip("/")
    return Endpoints(
        http=urlunsplit(("https" if secure else "http", parts.netloc, path, "", "")),
        ws=urlunsplit(("wss" if secure else "ws", parts.netloc, path, "", "")),
    )


# --- printing ------------------------------------------------------------------------------------


def say(text: str = "") -> None:
    print(text, flush=True)


def describe(message: dict) -> str:
    """One line per message: its type, then its fields (nested values as compact JSON)."""
    kind = message.get("type", "?")
    fields = {k: v for k, v in message.items() if k not in {"type", "timestamp"}}
    if kind == "orderbook":
        bids, asks = message.get("bids") or [], message.get("asks") or []
        best_bid = f"{bids[0][1]} @ {bids[0][0]}" if bids else "none"
        best_ask = f"{asks[0][1]} @ {asks[0][0]}" if asks else "none"
        text = f"{message.get('symbol')} best bid {best_bid}, best ask {best_ask} ({len(bids)}/{len(asks)} levels)"
    else:
        text = " ".join(f"{k}={_compact(v)}" for k, v in fields.items())
    stamp = message.get("timestamp", "")
    return f"  <- {kind:<14} {text}" + (f"  [{stamp}]" if stamp else "")


def _compact(value) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"))


def close_text(code: int | None, reason: str = "") -> str:
    meaning = CLOSE_CODES.get(code or 0, "")
    return f"closed with {code}" + (f" ({meaning})" if meaning else "") + (f": {reason}" if reason else "")


# --- the socket --------------------------------------------------------------------------------


class Session:
    """A websocket that prints what it sends and receives, and waits for messages with a deadline."""

    def __init__(self, ws):
        self.ws = ws
        self.received: list[dict] = []
        self._pending: deque[dict] = deque()  # the rest of a batched frame

    async def send(self, message: dict) -> None:
        say(f"  -> {json.dumps(message)}")
        try:
            await self.ws.send(json.dumps(message))
        except websockets.ConnectionClosed as closed:
            raise CheckFailed(f"sending {message['type']}: {await self.why_closed(closed)}") from None

    async def why_closed(self, closed: websockets.ConnectionClosed) -> str:
        """The server's reason for closing: its error frame if one came first, and the close code."""
        with contextlib.suppress(websockets.ConnectionClosed, TimeoutError):
            while True:  # the frames that were already received before the close
                for message in decode(await asyncio.wait_for(self.ws.recv(), 1)):
                    say(describe(message))
        code, reason = (closed.rcvd.code, closed.rcvd.reason) if closed.rcvd else (None, "")
        return f"the server {close_text(code, reason)}"

    async def expect(self, predicate: Callable[[dict], bool], what: str, timeout: float = TIMEOUT) -> dict:
        """The first message matching `predicate`; an error frame or a close fails the check."""
        deadline = time.monotonic() + timeout
        while True:
            message = await self._next(deadline, what, timeout)
            self.received.append(message)
            say(describe(message))
            check_timestamp(message)
            if predicate(message):
                return message
            if message.get("type") == "error":
                raise CheckFailed(f"waiting for {what}: error {message.get('code')}: {message.get('message')}")

    async def _next(self, deadline: float, what: str, timeout: float) -> dict:
        """The next message: the rest of the last batched frame first, then a new frame."""
        while not self._pending:
            left = deadline - time.monotonic()
            if left <= 0:
                raise CheckFailed(f"no {what} within {timeout:g} s")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), left)
            except TimeoutError:
                raise CheckFailed(f"no {what} within {timeout:g} s") from None
            except websockets.ConnectionClosed as closed:
                raise CheckFailed(f"waiting for {what}: {await self.why_closed(closed)}") from None
            self._pending.extend(decode(raw))
        return self._pending.popleft()


def decode(raw: str | bytes) -> list[dict]:
    """The messages of one frame: one object, or (batched) an array of them in order."""
    try:
        data = json.loads(raw)
    except ValueError:
        raise CheckFailed(f"the server sent something that is not JSON: {raw[:200]!r}") from None
    messages = data if isinstance(data, list) else [data]
    if not messages:
        raise CheckFailed("the server sent an empty batch (a frame must hold at least one message)")
    for message in messages:
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            raise CheckFailed(f"a server message must be an object with a 'type': {raw[:200]!r}")
    return messages


def check_timestamp(message: dict) -> None:
    stamp = message.get("timestamp")
    if not isinstance(stamp, str) or not stamp.endswith("Z") or "T" not in stamp:
        raise CheckFailed(f"{message.get('type')} has no ISO 8601 UTC timestamp ending in Z: {stamp!r}")


async def connect(url: str, **kwargs):
    try:
        return await websockets.connect(url, open_timeout=TIMEOUT, close_timeout=2, max_size=2**22, **kwargs)
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        raise CheckFailed(f"cannot connect to {redact(url)}: {exc or type(exc).__name__}") from None


def with_batch(url: str) -> str:
    """Ask for batched frames (the client takes a JSON array of messages as well as one message)."""
    return url + ("&" if "?" in url else "?") + "batch=1"


def redact(url: str) -> str:
    """The URL without its token, fit for printing."""
    return url.split("?", 1)[0] + ("?token=…" if "token=" in url else "")


async def ping(session: Session) -> None:
    started = time.monotonic()
    await session.send({"type": "ping"})
    await session.expect(lambda m: m.get("type") == "pong", "pong")
    say(f"  pong after {(time.monotonic() - started) * 1000:.0f} ms")


# --- the checks ----------------------------------------------------------------------------------


def check_health(base: Endpoints, token: str | None) -> str:
    url = f"{base.http}/ws/status"
    say(f"GET {url}")
    request = urllib.request.Request(url, headers={"Accept": "application/json"})  # noqa: S310 (http/https only)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (http/https only)
            status, body = response.status, response.read()
    except urllib.error.HTTPError as error:
        raise CheckFailed(f"GET {url} answered HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise CheckFailed(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None
    try:
        data = json.loads(body)
    except ValueError:
        raise CheckFailed(f"GET {url} did not answer JSON: {body[:200]!r}") from None
    say(f"  <- HTTP {status} {json.dumps(data, sort_keys=True)}")
    if not isinstance(data, dict) or data.get("status") != "active":
        raise CheckFailed(f"expected status 'active', got {data.get('status') if isinstance(data, dict) else data!r}")
    for name in ("active_connections", "total_subscriptions"):
        value = data.get(name)
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise CheckFailed(f"expected {name} to be a whole number >= 0, got {value!r}")
    market = data.get("market_data") if isinstance(data.get("market_data"), dict) else {}
    feed = "connected" if market.get("connected") else "NOT connected"
    simulated = " (simulated)" if market.get("simulated") else ""
    return (
        f"{data['active_connections']} connections, {data['total_subscriptions']} subscriptions, "
        f"market data {feed}{simulated}"
    )


async def check_market(base: Endpoints) -> str:
    url = with_batch(f"{base.ws}/ws/market")
    say(f"connect {url}")
    ws = await connect(url)
    session = Session(ws)
    try:
        symbols = list(MARKET_SYMBOLS)
        await session.send({"type": "subscribe_ticker", "symbols": symbols})
        ack = await session.expect(lambda m: m.get("type") == "subscribed", "subscribed ack")
        if ack.get("stream") != "ticker" or sorted(ack.get("symbols") or []) != sorted(symbols):
            raise CheckFailed(f"expected an ack for stream ticker and {symbols}, got {ack}")
        started = time.monotonic()
        ticker = await session.expect(lambda m: m.get("type") == "ticker", "ticker")
        waited = time.monotonic() - started
        missing = [f for f in TICKER_FIELDS if not isinstance(ticker.get(f), str)]
        if missing:
            raise CheckFailed(f"ticker fields must be strings; missing or not strings: {', '.join(missing)}")
        if ticker["symbol"] not in symbols:
            raise CheckFailed(f"got a ticker for {ticker['symbol']}, which was not subscribed")
        await ping(session)
        await session.send({"type": "unsubscribe_ticker", "symbols": symbols})
        await session.expect(lambda m: m.get("type") == "unsubscribed", "unsubscribed ack")
        return f"{ticker['symbol']} at {ticker['price']} ({waited:.1f} s after subscribing)"
    finally:
        await ws.close()


async def check_trading(base: Endpoints, token: str) -> str:
    url = with_batch(f"{base.ws}/ws/trading?{urlencode({'token': token})}")
    say(f"connect {redact(url)}")
    ws = await connect(url)
    session = Session(ws)
    try:
        channels = list(TRADING_CHANNELS)
        await session.send({"type": "subscribe", "channels": channels})
        ack = await session.expect(lambda m: m.get("type") == "subscribed", "subscribed ack")
        if sorted(ack.get("channels") or []) != sorted(channels):
            raise CheckFailed(f"expected an ack for {channels}, got {ack}")
        # The snapshots (open orders, bots, portfolio) come next, then the pong.
        await ping(session)
        snapshot = [m["type"] for m in session.received if m.get("type") not in {"subscribed", "pong", "heartbeat"}]
        counts = ", ".join(f"{snapshot.count(kind)} {kind}" for kind in dict.fromkeys(snapshot)) or "no state"
        return f"subscribed to {', '.join(channels)}; snapshot: {counts}"
    finally:
        await ws.close()


# --- recovery ------------------------------------------------------------------------------------


def rest(base: Endpoints, token: str, method: str, path: str, body: dict | None = None) -> tuple[int, object]:
    """A JSON REST call with the access token; (status, decoded body)."""
    url = f"{base.http}{path}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method)  # noqa: S310 (http/https only)
    request.add_header("Accept", "application/json")
    request.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:  # noqa: S310 (http/https only)
            status, raw = response.status, response.read()
    except urllib.error.HTTPError as error:
        status, raw = error.code, error.read()
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        raise CheckFailed(f"cannot reach {url}: {getattr(error, 'reason', error)}") from None
    try:
        return status, json.loads(raw) if raw else None
    except ValueError:
        return status, raw[:200]


def place_orders(base: Endpoints, token: str, symbol: str, quantity: str, count: int) -> list[str]:
    """Place `count` market buys and wait until REST shows every one of them final; their ids."""
    ids = []
    for _ in range(count):
        order = {"symbol": symbol, "side": "buy", "type": "market", "quantity": quantity}
        say(f"  POST /api/orders/ {json.dumps(order)}")
        status, body = rest(base, token, "POST", "/api/orders/", order)
        if status != 201 or not isinstance(body, dict):
            raise CheckFailed(f"POST /api/orders/ answered HTTP {status}: {body}")
        say(f"  <- HTTP 201 order {body['id']} {body['status']}")
        ids.append(str(body["id"]))
    deadline = time.monotonic() + TIMEOUT
    while True:
        statuses = order_statuses(base, token)
        waiting = [i for i in ids if statuses.get(i) not in FINAL_ORDER_STATUSES]
        if not waiting:
            return ids
        if time.monotonic() > deadline:
            raise CheckFailed(f"orders {', '.join(waiting)} were not final within {TIMEOUT:g} s")
        time.sleep(0.2)  # polling REST: there is no event to await outside the socket


def order_statuses(base: Endpoints, token: str) -> dict[str, str]:
    status, body = rest(base, token, "GET", "/api/orders/")
    if status != 200:
        raise CheckFailed(f"GET /api/orders/ answered HTTP {status}: {body}")
    rows = body.get("results", body) if isinstance(body, dict) else body
    return {str(row["id"]): row["status"] for row in rows}


def orders_position(ack: dict) -> dict:
    position = (ack.get("positions") or {}).get("orders")
    if not isinstance(position, dict) or not isinstance(position.get("epoch"), str):
        raise CheckFailed(f"the subscribed ack carries no position for orders (no seq support?): {ack}")
    if not isinstance(position.get("seq"), int):
        raise CheckFailed(f"the orders position has no whole seq: {position}")
    return position


async def check_recovery(base: Endpoints, token: str, symbol: str, quantity: str, count: int) -> str:
    url = with_batch(f"{base.ws}/ws/trading?{urlencode({'token': token})}")
    say(f"connect {redact(url)}")
    ws = await connect(url)
    session = Session(ws)
    try:
        await session.send({"type": "subscribe", "channels": ["orders"]})
        position = orders_position(await session.expect(lambda m: m.get("type") == "subscribed", "subscribed ack"))
        await ping(session)  # the snapshot and anything in flight arrive before the pong
        for message in session.received:
            if message.get("type") == "order_update" and isinstance(message.get("seq"), int):
                position["seq"] = max(position["seq"], message["seq"])
    finally:
        await ws.close()
    say(f"  disconnected at orders position epoch={position['epoch']} seq={position['seq']}")

    ids = await asyncio.to_thread(place_orders, base, token, symbol, quantity, count)
    final = await asyncio.to_thread(order_statuses, base, token)

    say(f"connect {redact(url)} (resuming)")
    ws = await connect(url)
    session = Session(ws)
    try:
        await session.send({"type": "subscribe", "channels": ["orders"], "since": {"orders": position}})
        ack = await session.expect(lambda m: m.get("type") == "subscribed", "subscribed ack")
        if (ack.get("recovered") or {}).get("orders") is not True:
            raise CheckFailed(f"the server did not resume orders from {position}: {ack.get('recovered')}")
        missed = await missed_updates(session, ids, final)
    finally:
        await ws.close()
    seqs = [m["seq"] for m in missed]
    expected = list(range(position["seq"] + 1, position["seq"] + 1 + len(missed)))
    if seqs != expected:
        raise CheckFailed(f"the missed updates came as seq {seqs}; expected {expected} (in order, no gap or duplicate)")
    return f"{len(missed)} missed order updates for {len(ids)} orders recovered in order (seq {seqs[0]}..{seqs[-1]})"


async def missed_updates(session: Session, ids: list[str], final: dict[str, str]) -> list[dict]:
    """The order updates with a seq after the resume, until every placed order reached its final status."""
    missed: list[dict] = []
    last: dict[str, str] = {}
    deadline = time.monotonic() + TIMEOUT
    while any(last.get(i) != final[i] for i in ids):
        left = deadline - time.monotonic()
        message = await session.expect(lambda m: m.get("type") in {"order_update", "heartbeat"}, "order update", left)
        if message.get("type") != "order_update" or not isinstance(message.get("seq"), int):
            continue
        missed.append(message)
        last[str(message.get("order_id"))] = message.get("status")
    return missed


# --- running -------------------------------------------------------------------------------------


async def run(test: str, base: Endpoints, token: str | None, **recovery) -> bool:
    checks: list[tuple[str, Callable]] = []
    if test in {"health", "all"}:
        checks.append(("health", lambda: asyncio.to_thread(check_health, base, token)))
    if test in {"market", "all"}:
        checks.append(("market", lambda: check_market(base)))
    if test in {"trading", "all"}:
        if token:
            checks.append(("trading", lambda: check_trading(base, token)))
        else:
            say("SKIP trading: no --token given")
    if test == "recovery":
        checks.append(("recovery", lambda: check_recovery(base, token, **recovery)))
    results = []
    for name, check in checks:
        say(f"\n== {name} ==")
        try:
            summary = await asyncio.wait_for(check(), TIMEOUT * 4)
        except CheckFailed as failure:
            say(f"FAIL {name}: {failure}")
            results.append(False)
        except TimeoutError:
            say(f"FAIL {name}: did not finish within {TIMEOUT * 4:g} s")
            results.append(False)
        else:
            say(f"PASS {name}: {summary}")
            results.append(True)
    passed = sum(results)
    say(f"\n{passed} passed, {len(results) - passed} failed")
    return all(results)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="Check a trading gateway's WebSocket endpoints and health.")
    parser.add_argument("--test", choices=["market", "trading", "recovery", "health", "all"], default="all")
    parser.add_argument("--token", help="an access JWT (POST /api/token/); required by --test trading and recovery")
    parser.add_argument("--url", default=DEFAULT_URL, help=f"the gateway's base URL (default {DEFAULT_URL})")
    parser.add_argument("--orders", type=int, default=3, help="recovery: market orders to place while away (1-50)")
    parser.add_argument("--symbol", default="BTCUSDT", help="recovery: the symbol to buy (default BTCUSDT)")
    parser.add_argument("--quantity", default="0.001", help="recovery: the quantity of each order (default 0.001)")
    args = parser.parse_args(argv)
    if args.test in {"trading", "recovery"} and not args.token:
        parser.error(f"--test {args.test} needs --token (an access JWT from POST /api/token/)")
    if not 1 <= args.orders <= 50:
        parser.error(f"--orders must be between 1 and 50, not {args.orders}")
    try:
        args.endpoints = endpoints(args.url)
    except ValueError as error:
        parser.error(str(error))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        recovery = {"symbol": args.symbol.upper(), "quantity": args.quantity, "count": args.orders}
        ok = asyncio.run(run(args.test, args.endpoints, args.token, **recovery))
    except KeyboardInterrupt:
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
