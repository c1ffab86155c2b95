"""The async boundary the market-data worker calls: paper matching, revaluation, risk checks, bots.

`handle_market_messages` is called with every normalised trade and ticker, in order, and returns at
once: it records the price and hands the database work to background tasks, so a slow database
never holds up the market feed. Trades queue per symbol with their price (their quantity and time
are read in the matching run, only for symbols with an open limit order); one matching run at a
time, at most one per MATCH_INTERVAL_SECONDS, takes every trade queued so far, every symbol's in
order (each trade fills at most its quantity, and only orders placed before it printed): one trip
to the ORM's thread for every symbol, as the database work runs in that one thread anyway. Price
moves mark their symbol for revaluation; one revaluation round per second at most sends each
holder of a moved symbol one portfolio message and re-checks the risk limits on it.
`run_bots` drives the running bots' strategies once a second until told to stop.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation

from channels.db import database_sync_to_async

from accounts import selectors, services
from accounts.matching import Trade

logger = logging.getLogger(__name__)

REVALUE_INTERVAL_SECONDS = 1.0  # at most one price-driven portfolio message per user per second
# At most this often a matching run: each costs a trip to the ORM's thread and a query whatever the
# number of trades, and a feed that trickles (as Binance's does) would otherwise start one per trade.
MATCH_INTERVAL_SECONDS = 0.1
BOT_TICK_SECONDS = 1.0
# Trades waiting for matching, per symbol: far more than a run ever lags behind; past it the oldest
# are dropped, loudly, rather than the worker's memory growing without bound.
MAX_PENDING_TRADES = 100_000


def _price(message: dict) -> tuple[str, Decimal] | None:
    symbol, raw = message.get("symbol"), message.get("price")
    if not isinstance(symbol, str) or not isinstance(raw, str | int) or isinstance(raw, bool):
        return None
    try:
        price = Decimal(raw)
    except InvalidOperation:
        return None
    if not price.is_finite() or price <= 0:
        return None
    return symbol.upper(), price


def _trade(message: dict, symbol: str, price: Decimal) -> Trade | None:
    """A trade message as matching.Trade; None (logged) when its quantity or time is unusable."""
    raw, stamp = message.get("quantity"), message.get("timestamp")
    try:
        quantity = Decimal(raw) if isinstance(raw, str | int) and not isinstance(raw, bool) else None
        moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if isinstance(stamp, str) else None
    except (InvalidOperation, ValueError):
        quantity = moment = None
    if quantity is None or not quantity.is_finite() or quantity <= 0 or moment is None:
        logger.warning("%s trade %s without a usable quantity or time: not matched", symbol, message.get("trade_id"))
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return Trade(price=price, quantity=quantity, time=moment, trade_id=str(message.get("trade_id", "")))


class PendingTrades:
    """A symbol's trades waiting for matching, as their price and message. Each becomes a matching.Trade
    (its quantity and time parsed, or a logged refusal) only when iterated, in the database thread:
    orders_match_many iterates only the symbols with an open limit order, a few of a hundred under a
    full feed, and building every trade cost the worker more than the matching runs."""

    def __init__(self, symbol: str):
        self.symbol = symbol
        self._waiting: collections.deque[tuple[Decimal, dict]] = collections.deque()

    def append(self, price: Decimal, message: dict) -> None:
        self._waiting.append((price, message))

    def popleft(self) -> dict:
        """Drop the oldest trade; its message (for the log line)."""
        return self._waiting.popleft()[1]

    def __len__(self) -> int:
        return len(self._waiting)

    def __iter__(self) -> Iterator[Trade]:
        for price, message in self._waiting:
            trade = _trade(message, self.symbol, price)
            if trade is not None:
                yield trade


def _revalue(symbols: set[str], prices: dict[str, Decimal]) -> None:
    """One revaluation round (sync, in the ORM's thread): portfolios of holders, then risk limits."""
    services.portfolios_publish(user_ids=selectors.position_holders(symbols=symbols), prices=prices)
    # A hundred symbols move every second; only those with a limit on them cost a check.
    for symbol in sorted(selectors.symbols_with_risk_limits(symbols=symbols)):
        services.risk_limits_check(symbol=symbol, price=prices[symbol])


class Engine:
    """Per-process state: last prices, pending trade ranges, and the background tasks."""

    def __init__(
        self,
        *,
        revalue_interval: float = REVALUE_INTERVAL_SECONDS,
        match_interval: float = MATCH_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.prices: dict[str, Decimal] = {}
        self._revalue_interval = revalue_interval
        self._match_interval = match_interval
        self._clock = clock
        self._pending: dict[str, PendingTrades] = {}
        self._matcher: asyncio.Task | None = None
        self._dirty: set[str] = set()
        self._revaluer: asyncio.Task | None = None
        self._handlers: dict[str, Callable[[str, Decimal, dict], None]] = {
            "trade": self._on_trade,
            "ticker": self._on_ticker,
        }

    async def handle(self, message: dict) -> None:
        """Take one market message; the database work it causes runs in the background."""
        self.take(message)

    async def handle_many(self, messages: Iterable[dict]) -> None:
        """`handle` of each message, in order (the worker's feed: one call for a tick's messages)."""
        for message in messages:
            self.take(message)

    def take(self, message: dict) -> None:
        """Record one market message's price and queue its work; never waits."""
        handler = self._handlers.get(message.get("type"))
        if handler is None:
            return  # order books and anything else do not move paper orders or valuations
        parsed = _price(message)
        if parsed is None:
            logger.debug("market message without a usable price ignored: %r", message.get("type"))
            return
        symbol, price = parsed
        self.prices[symbol] = price
        handler(symbol, price, message)
        self._dirty.add(symbol)
        if self._revaluer is None or self._revaluer.done():
            self._revaluer = asyncio.create_task(self._revalue_loop(), name="accounts-revalue")

    def _on_trade(self, symbol: str, price: Decimal, message: dict) -> None:
        pending = self._pending.get(symbol)
        if pending is None:
            pending = self._pending[symbol] = PendingTrades(symbol)
        if len(pending) >= MAX_PENDING_TRADES:
            dropped = pending.popleft()
            logger.error(
                "paper matching on %s is %d trades behind: trade %s not matched",
                symbol,
                len(pending),
                dropped.get("trade_id"),
            )
        pending.append(price, message)
        if self._matcher is None or self._matcher.done():
            self._matcher = asyncio.create_task(self._match_loop(), name="accounts-match")

    def _on_ticker(self, symbol: str, price: Decimal, message: dict) -> None:
        """A ticker moves valuations only; paper orders fill on trades."""

    async def _match_loop(self) -> None:
        # Trades that arrive while a run is in the database, or in the pause after it, are the next run's.
        while self._pending:
            started = self._clock()
            trades, self._pending = self._pending, {}
            await self._guarded(
                database_sync_to_async(services.orders_match_many)(trades=trades, prices=dict(self.prices)),
                "paper matching on %s failed",
                ",".join(sorted(trades)),
            )
            await asyncio.sleep(max(0.0, self._match_interval - (self._clock() - started)))

    async def _revalue_loop(self) -> None:
        while self._dirty:
            started = self._clock()
            symbols, self._dirty = self._dirty, set()
            await self._guarded(
                database_sync_to_async(_revalue)(symbols, dict(self.prices)),
                "revaluation of %s failed",
                ",".join(sorted(symbols)),
            )
            await asyncio.sleep(max(0.0, self._revalue_interval - (self._clock() - started)))

    @staticmethod
    async def _guarded(work: Awaitable, what: str, *args: object) -> None:
        try:
            await work
        except Exception:
            logger.exception(what, *args)

    async def drain(self) -> None:
        """Wait until the work caused by the messages so far is done (tests, orderly shutdown)."""
        while True:
            tasks = [t for t in (self._matcher, self._revaluer) if t is not None and not t.done()]
            if not tasks:
                return
            await asyncio.gather(*tasks, return_exceptions=True)

    async def run_bots(self, stop: asyncio.Event, *, tick: float = BOT_TICK_SECONDS) -> None:
        """Every tick, let each running bot whose interval elapsed place its order, until `stop` is set."""
        logger.info("bot runner started")
        while not stop.is_set():
            await self._guarded(
                database_sync_to_async(services.bots_run_due)(now=datetime.now(UTC), prices=dict(self.prices)),
                "bot step failed",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=tick)
        logger.info("bot runner stopped")


_engine = Engine()


async def handle_market_messages(messages: Iterable[dict]) -> None:
    """Feed normalised market messages, in order: the worker's listener (marketdata.listeners calls it
    with the messages that arrived since its last call)."""
    await _engine.handle_many(messages)


async def run_bots(stop: asyncio.Event) -> None:
    """Run the bots until `stop` is set."""
    await _engine.run_bots(stop)


async def drain() -> None:
    """Wait for the matching and revaluation work already started (call before shutting down)."""
    await _engine.drain()
