"""The market-data worker: exchange connections in, channel-layer groups and the latest-state cache out.

    run_worker(stop, listeners)            the entry point (runstream, or the embedded server's loop)
      MarketDataWorker                     symbols, books, publishing, status
        Shard (one per 1024 streams)       one exchange connection: subscribe, read, reconnect

Binance's rules it keeps: at most 5 client messages a second per connection (pings and pongs
included, so SUBSCRIBEs are paced below that), at most 1024 streams per connection (more symbols
are sharded over more connections), pings answered (websockets does it), a connection replaced
before its 24 hours are up and when the server announces a shutdown, reconnects with exponential
backoff and full jitter. A feed silent for `stale_after` seconds counts as a failed connection. A
malformed frame is logged (a short excerpt) and skipped, never fatal.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import logging
import math
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from channels.db import database_sync_to_async
from django.conf import settings
from prometheus_client import Counter as MetricCounter
from websockets.asyncio.client import ClientConnection, connect

from marketdata import latest, normalize, selectors, services, status
from marketdata.backoff import Retry, RetryPolicy
from marketdata.book_side import Level
from marketdata.checksum import book_checksum
from marketdata.exceptions import NormalizeError, PlannedReconnect, SnapshotError, StaleFeed
from marketdata.listeners import Listener, ListenerFeed
from marketdata.normalize import (
    DepthDiff,
    ExchangeError,
    MarketMessage,
    ServerShutdown,
    SubscriptionResult,
    Unsupported,
)
from marketdata.orderbook import OrderBook, Outcome
from marketdata.rest import fetch_depth
from realtime import protocol, publish
from realtime.protocol import Stream

logger = logging.getLogger(__name__)

STREAM_KINDS = ("ticker", "trade", "depth@100ms")
FRAMES_READ = MetricCounter("marketdata_frames_total", "Frames read from the exchange's stream connections")
BOOK_RESTORE_EVERY = 5.0  # seconds; well within latest.BOOK_SNAPSHOT_TTL_SECONDS
BOOK_CATCH_UP_EVERY = 1.0  # seconds; the longest a sent book's last_update_id lags while only deeper levels move
SymbolsLoader = Callable[[], Awaitable[Iterable[str]]]


@dataclass(frozen=True)
class WorkerOptions:
    ws_url: str
    rest_url: str
    source: str = "binance"  # or "simulator": the data is marked simulated
    depth: int = 20  # order-book levels published per side
    stale_after: float = 30.0  # seconds without any frame before the connection is replaced
    symbols_refresh: float = 30.0  # seconds between reads of the enabled symbols
    status_every: float = 5.0  # seconds between status records (their TTL is 30 s)
    publish_every: float = 0.1  # at most one order book per symbol this often
    max_connection_age: float = 23.5 * 3600  # Binance cuts connections at 24 h
    max_streams_per_connection: int = 1024
    messages_per_second: float = 4.0  # Binance allows 5, counting pings and pongs
    subscribe_batch: int = 200  # streams per SUBSCRIBE / UNSUBSCRIBE message
    url_streams: int = 200  # streams named in the connection URL; the rest are SUBSCRIBEd
    snapshot_limit: int = 1000  # levels asked of /api/v3/depth, as Binance recommends
    snapshot_concurrency: int = 4  # depth requests in flight at once (they cost request weight)
    snapshot_timeout: float = 10.0
    open_timeout: float = 10.0
    listener_queue: int = 10_000
    listener_grace: float = 2.0  # seconds listeners get to drain their queue at stop
    max_pending: int = 50_000  # market messages read but not yet published; beyond, the oldest are dropped
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    snapshot_retry: RetryPolicy = field(default_factory=lambda: RetryPolicy(initial=1.0, maximum=30.0))
    symbols_loader: SymbolsLoader | None = None  # default: the enabled rows of marketdata.Symbol

    @property
    def simulated(self) -> bool:
        return self.source == "simulator"

    @classmethod
    def from_settings(cls, **overrides) -> WorkerOptions:
        app = settings.APP
        values = {
            "ws_url": app.binance_ws_url,
            "rest_url": app.binance_rest_url,
            "source": app.market_source,
            "depth": app.orderbook_depth,
            # WS_RECONNECT_TIMEOUT: the longest wait between reconnects, here as for browser clients.
            "retry": RetryPolicy(maximum=app.ws_reconnect_timeout),
        }
        return cls(**{**values, **overrides})


async def run_worker(
    stop: asyncio.Event,
    listeners: Iterable[Listener] = (),
    options: WorkerOptions | None = None,
) -> None:
    """Stream market data until `stop` is set, feeding every listener (the paper engine is one)."""
    worker = MarketDataWorker(options or WorkerOptions.from_settings(), tuple(listeners))
    await worker.run(stop)


@database_sync_to_async
def load_enabled_symbols() -> list[str]:
    """The enabled Symbol rows; the table is seeded from MARKET_SYMBOLS the first time it is empty."""
    services.symbol_seed_defaults(names=settings.APP.market_symbols)
    return selectors.symbol_enabled_names()


@dataclass
class _PublishedBook:
    """A book's last published top and message: what a later round compares with, and re-stores."""

    top: tuple[list[Level], list[Level]]
    text: str
    sent_at: float  # time.monotonic()
    stored_at: float


class _Throttle:
    """At most one log line per `every` seconds for a recurring problem; counts what it held back."""

    def __init__(self, every: float = 10.0):
        self.every, self.count, self._last = every, 0, -math.inf

    def due(self) -> int | None:
        self.count += 1
        now = time.monotonic()
        if now - self._last < self.every:
            return None
        count, self.count, self._last = self.count, 0, now
        return count


class MarketDataWorker:
    def __init__(self, options: WorkerOptions, listeners: Iterable[Listener] = ()):
        self.options = options
        self.symbols: set[str] = set()
        self.books: dict[str, OrderBook] = {}
        self.shards: list[Shard] = []
        self.resyncs: Counter[str] = Counter()  # books that lost sync, by symbol
        self.last_frame_at: float | None = None  # wall clock
        self._feeds = [ListenerFeed(listener, options.listener_queue) for listener in listeners]
        self._dirty: set[str] = set()  # books changed since the last round
        self._behind: set[str] = set()  # books whose top is published but whose last_update_id moved on
        self._published: dict[str, _PublishedBook] = {}  # since the book last came into sync
        self._syncing: dict[str, asyncio.Task] = {}
        self._background: set[asyncio.Task] = set()
        self._snapshot_slots = asyncio.Semaphore(options.snapshot_concurrency)
        self._shard_numbers = itertools.count(1)  # for log lines; never reused
        self._running = False
        # Set at stop; the loops check it besides being cancelled: a cancellation that lands in a Redis
        # or thread call can be swallowed there (measured: the publisher then waited for messages
        # that no longer come, and the worker never stopped), and a flag cannot be.
        self._stopping = False
        self._malformed = _Throttle()
        self._publish_failures = _Throttle()
        self._pending_drops = _Throttle()
        self._outgoing: collections.deque[dict] = collections.deque()  # market messages not yet published
        # Frames read since FRAMES_READ last heard of them: the metric's lock, taken for every frame,
        # cost more than the rest of counting; each round of books brings it up to date.
        self._frames_unreported = 0
        self._has_outgoing = asyncio.Event()
        self._handlers: dict[type, Callable] = {
            MarketMessage: self._on_market,
            DepthDiff: self._on_depth,
            SubscriptionResult: self._on_reply,
            ExchangeError: self._on_reply,
            ServerShutdown: self._on_shutdown,
            Unsupported: self._on_unsupported,
        }

    # --- lifecycle --------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        self._running = True
        for feed in self._feeds:
            feed.start()
        loops = [
            asyncio.create_task(self._every(self.options.symbols_refresh, self.refresh_symbols), name="md-symbols"),
            asyncio.create_task(self._every(self.options.publish_every, self.publish_books), name="md-books"),
            asyncio.create_task(self._every(self.options.status_every, self.write_status), name="md-status"),
            asyncio.create_task(self._publish_outgoing(), name="md-publish"),
        ]
        logger.info("market-data worker started (source %s)", self.options.source)
        try:
            await stop.wait()
        finally:
            await self._shutdown(loops)
            logger.info("market-data worker stopped")

    async def _shutdown(self, loops: list[asyncio.Task]) -> None:
        self._stopping = True
        self._has_outgoing.set()  # the publisher sees the flag even if its cancellation went missing
        tasks = [*loops, *self._syncing.values(), *self._background]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*(shard.stop() for shard in self.shards), *tasks, return_exceptions=True)
        # Closing the connections cleared the books; let the cache hear about it before we go.
        await asyncio.gather(*self._background, return_exceptions=True)
        self._running = False
        for feed in self._feeds:
            await feed.stop(self.options.listener_grace)
        with contextlib.suppress(Exception):  # the cache may be gone too; the record expires anyway
            await self.write_status()

    async def _every(self, seconds: float, action: Callable[[], Awaitable[None]]) -> None:
        """Run `action` now and every `seconds` until the worker stops; a failure is logged and the loop goes on."""
        while not self._stopping:
            try:
                await action()
            except Exception:
                logger.exception("market-data worker: %s failed", action.__name__)
            if not self._stopping:
                await asyncio.sleep(seconds)

    def _spawn(self, coroutine: Awaitable) -> None:
        task = asyncio.ensure_future(coroutine)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # --- symbols and shards -----------------------------------------------------------------------

    async def refresh_symbols(self) -> None:
        loader = self.options.symbols_loader or load_enabled_symbols
        names = {str(name).upper() for name in await loader()}
        malformed = sorted(n for n in names if not protocol.SYMBOL_PATTERN.fullmatch(n))
        if malformed:
            logger.warning("ignoring malformed symbol names: %s", ", ".join(malformed))
        self.apply_symbols(names - set(malformed))

    def apply_symbols(self, wanted: set[str]) -> None:
        added, removed = sorted(wanted - self.symbols), sorted(self.symbols - wanted)
        if not added and not removed:
            return
        for symbol in removed:
            self._forget(symbol)
        for shard in self.shards:
            shard.remove([s for s in removed if s in shard.symbols])
        self._place(added)
        for shard in [s for s in self.shards if not s.symbols]:
            self.shards.remove(shard)
            self._spawn(shard.stop())
        logger.info(
            "streaming %d symbols on %d connections (added %s, removed %s)",
            len(self.symbols),
            len(self.shards),
            ",".join(added) or "-",
            ",".join(removed) or "-",
        )

    def _place(self, symbols: list[str]) -> None:
        per_shard = max(1, self.options.max_streams_per_connection // len(STREAM_KINDS))
        for symbol in symbols:
            self.symbols.add(symbol)
            self.books[symbol] = OrderBook(symbol)
        pending = list(symbols)
        for shard in [*self.shards]:
            room = per_shard - len(shard.symbols)
            if room > 0 and pending:
                shard.add(pending[:room])
                pending = pending[room:]
        while pending:
            shard = Shard(self, number=next(self._shard_numbers))
            self.shards.append(shard)
            shard.add(pending[:per_shard])
            pending = pending[per_shard:]
            shard.start()

    def _forget(self, symbol: str) -> None:
        self.symbols.discard(symbol)
        self.books.pop(symbol, None)
        self._unpublish(symbol)
        task = self._syncing.pop(symbol, None)
        if task is not None:
            task.cancel()
        self._spawn(latest.aclear_snapshot(Stream.ORDERBOOK, symbol))

    # --- frames -----------------------------------------------------------------------------------

    def handle_frame(self, raw: str | bytes, shard: Shard) -> None:
        """One frame from a shard's connection. PlannedReconnect asks the shard to reconnect now.

        A plain function, not a coroutine: handling a frame never waits (it only starts tasks), which the
        read loop's timeout relies on, and a coroutine per frame and per handler cost the worker too."""
        self.last_frame_at = time.time()
        self._frames_unreported += 1
        try:
            event = normalize.parse_frame(raw)
        except NormalizeError as error:
            skipped = self._malformed.due()
            if skipped is not None:
                logger.warning(
                    "skipped %d malformed frame(s) from connection %d; latest: %s: %s",
                    skipped,
                    shard.number,
                    error,
                    normalize.excerpt(raw),
                )
            return
        self._handlers[type(event)](event, shard)

    def _on_market(self, event: MarketMessage, shard: Shard) -> None:
        if event.symbol not in self.symbols:
            return  # a frame in flight for a symbol just disabled
        if len(self._outgoing) >= self.options.max_pending:
            self._outgoing.popleft()  # Redis is away or far behind: the oldest goes, as a slow socket's would
            if (dropped := self._pending_drops.due()) is not None:
                logger.warning("dropped %d market message(s): publishing fell behind", dropped)
        self._outgoing.append(event.message)
        self._has_outgoing.set()

    async def _publish_outgoing(self) -> None:
        """Publish the market messages read so far, in order, as one batch: whatever arrived while the
        previous batch was being written goes next. No timer: an idle feed publishes each message at once."""
        while not self._stopping:
            await self._has_outgoing.wait()
            self._has_outgoing.clear()
            batch, self._outgoing = self._outgoing, collections.deque()
            try:
                await self._publish_batch(batch)
            except Exception:
                if (failures := self._publish_failures.due()) is not None:
                    logger.warning("could not publish %d market message(s)", failures, exc_info=True)
            self._offer_all(batch)  # the listeners get every message, published or not

    async def _publish_batch(self, batch: collections.deque[dict]) -> None:
        """Store the state of `batch`, offer its messages to the listeners (taking them off), publish it."""
        # Latest state first: whoever sees a message can already read at least this state (the last
        # price and ticker of the batch, one write for all). Each message gets its seq once and is
        # encoded once, for the snapshot and every socket; the batch's trades are stored in one trip.
        prices = {m["symbol"]: (m["price"], None) for m in batch if m["type"] == "trade"}
        frames = await publish.aprepare_market_many(list(batch))
        snapshots = {(Stream.TICKER, f.symbol): f.text for f in frames if f.kind != "trade"}
        await latest.astore_market_state(prices=prices, snapshots=snapshots)
        self._offer_all(batch)  # the listeners (the paper engine) can read the state now too
        await publish.asend_market_many(frames)

    def _offer_all(self, batch: collections.deque[dict]) -> None:
        """Offer the messages to every listener, in order, and take them off the batch."""
        for feed in self._feeds:
            feed.offer_many(batch)
        batch.clear()

    def _on_depth(self, diff: DepthDiff, shard: Shard) -> None:
        book = self.books.get(diff.symbol)
        if book is None:
            return
        outcome = book.on_diff(diff)
        if outcome is Outcome.APPLIED:
            self._dirty.add(diff.symbol)
        elif outcome is Outcome.RESYNC:
            self._lost_sync(diff.symbol, "a gap in update ids or a crossed book")
        if book.needs_snapshot and diff.symbol not in self._syncing:
            task = asyncio.create_task(self._sync_book(diff.symbol), name=f"md-sync-{diff.symbol}")
            self._syncing[diff.symbol] = task

    def _on_reply(self, event: SubscriptionResult | ExchangeError, shard: Shard) -> None:
        shard.on_reply(event)

    def _on_shutdown(self, event: ServerShutdown, shard: Shard) -> None:
        raise PlannedReconnect("the exchange announced a server shutdown")

    def _on_unsupported(self, event: Unsupported, shard: Shard) -> None:
        logger.debug("skipping a %s event", event.event_type)

    # --- order books ------------------------------------------------------------------------------

    def _lost_sync(self, symbol: str, reason: str) -> None:
        self.resyncs[symbol] += 1
        self._unpublish(symbol)
        logger.warning("%s order book lost sync (%s); fetching a new snapshot", symbol, reason)
        self._spawn(latest.aclear_snapshot(Stream.ORDERBOOK, symbol))

    def reset_books(self, symbols: Iterable[str]) -> None:
        """The stream was interrupted: these books missed events and must sync again from scratch."""
        for symbol in symbols:
            book = self.books.get(symbol)
            if book is None:
                continue
            book.reset()
            self._unpublish(symbol)
            task = self._syncing.pop(symbol, None)
            if task is not None:
                task.cancel()
            self._spawn(latest.aclear_snapshot(Stream.ORDERBOOK, symbol))

    def _unpublish(self, symbol: str) -> None:
        """The book lost sync or went away: nothing published of it counts any more. Once in sync
        again it is published whatever its levels (its stored snapshot was cleared meanwhile)."""
        self._dirty.discard(symbol)
        self._behind.discard(symbol)
        self._published.pop(symbol, None)

    async def _sync_book(self, symbol: str) -> None:
        """Fetch REST snapshots until the book is in sync (Binance's steps 3 to 5)."""
        retry = Retry(self.options.snapshot_retry)
        try:
            while (book := self.books.get(symbol)) is not None and book.needs_snapshot:
                if await self._try_snapshot(book):
                    return
                delay = retry.failed()
                if delay is None:
                    logger.error("%s order book: giving up on snapshots", symbol)
                    return
                await asyncio.sleep(delay)
        finally:
            if self._syncing.get(symbol) is asyncio.current_task():
                del self._syncing[symbol]

    async def _try_snapshot(self, book: OrderBook) -> bool:
        limit, timeout = self.options.snapshot_limit, self.options.snapshot_timeout
        try:
            async with self._snapshot_slots:
                snapshot = await fetch_depth(self.options.rest_url, book.symbol, limit, timeout)
        except (SnapshotError, NormalizeError) as error:
            logger.warning("could not get the %s depth snapshot from %s: %s", book.symbol, self.options.rest_url, error)
            return False
        if self.books.get(book.symbol) is not book:
            return True  # the symbol was removed meanwhile
        outcome = book.on_snapshot(snapshot)
        if outcome is Outcome.APPLIED:
            self._dirty.add(book.symbol)
            logger.debug("%s order book in sync at update %s", book.symbol, book.last_update_id)
            return True
        logger.debug("%s snapshot %s did not bridge the buffered events; asking again", book.symbol, outcome)
        return False

    async def publish_books(self) -> None:
        """Publish the top of every book with news since its last publish (see _has_news), if in sync
        and not crossed; one write stores them all, with the quiet books' re-store."""
        self._report_frames()
        now = time.monotonic()
        dirty, self._dirty = self._dirty, set()
        behind, self._behind = self._behind, set()
        tops, messages = {}, []
        for symbol in sorted(dirty | behind):
            book = self.books.get(symbol)
            if book is None or not book.synced:  # a synced book is never crossed: OrderBook discards it
                continue
            top = book.top(self.options.depth)
            if not self._has_news(symbol, top, settled=symbol not in dirty, now=now):
                self._behind.add(symbol)
                continue
            tops[symbol] = top
            messages.append(_book_message(book, top))
        frames = await publish.aprepare_market_many(messages)
        # The quiet books first, so a book of this round is stored with its new message.
        snapshots = self._quiet_books(now) | {(Stream.ORDERBOOK, f.symbol): f.text for f in frames}
        await latest.astore_market_state(snapshots=snapshots)
        await publish.asend_market_many(frames)
        # Only once sent: a later round compares its books with what subscribers actually have.
        for frame in frames:
            self._published[frame.symbol] = _PublishedBook(tops[frame.symbol], frame.text, now, now)

    def _report_frames(self) -> None:
        if self._frames_unreported:
            FRAMES_READ.inc(self._frames_unreported)
            self._frames_unreported = 0

    def _has_news(self, symbol: str, top: tuple[list[Level], list[Level]], *, settled: bool, now: float) -> bool:
        """Whether a changed book is worth publishing: its top differs from the one last published, or
        only its last_update_id moved and the book settled (no diff since the last round) or the last
        send is BOOK_CATCH_UP_EVERY old."""
        # Diffs below the top change nothing a subscriber sees but last_update_id, which clients (and
        # our tests) use to tell that a book caught up with the exchange: deferred, never dropped.
        published = self._published.get(symbol)
        if published is None or published.top != top:
            return True
        return settled or now - published.sent_at >= BOOK_CATCH_UP_EVERY

    def _quiet_books(self, now: float) -> dict[tuple[str, str], str]:
        """Books in sync that were not published for a while, to re-store so their snapshot does not expire."""
        quiet = {}
        for symbol, published in list(self._published.items()):
            book = self.books.get(symbol)
            if book is None or not book.synced:
                del self._published[symbol]
            elif now - published.stored_at > BOOK_RESTORE_EVERY:
                published.stored_at = now
                quiet[(Stream.ORDERBOOK, symbol)] = published.text
        return quiet

    # --- status -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return bool(self.shards) and all(shard.connected for shard in self.shards)

    def status_record(self) -> dict:
        last = self.last_frame_at
        return status.status_record(
            source=self.options.source,
            simulated=self.options.simulated,
            connected=self._running and self.connected,
            symbols=self.symbols,
            last_message_at=protocol.iso_timestamp(datetime.fromtimestamp(last, UTC)) if last else None,
            connections=len(self.shards),
            books_in_sync=sum(book.synced for book in self.books.values()),
            reconnects=sum(shard.reconnects for shard in self.shards),
            epoch=publish.MARKET_EPOCH,  # of the ticker and order book seqs this run publishes
        )

    async def write_status(self) -> None:
        await status.awrite_status(self.status_record())


class Shard:
    """One exchange connection carrying up to `max_streams_per_connection` streams."""

    def __init__(self, worker: MarketDataWorker, number: int):
        self.worker = worker
        self.options = worker.options
        self.number = number
        self.symbols: set[str] = set()
        self.connected = False
        self.connections = 0  # opened so far
        self.reconnects = 0
        self._commands: asyncio.Queue[tuple[str, list[str]]] = asyncio.Queue()
        self._pending: dict[int, tuple[str, int]] = {}  # request id -> (method, number of streams)
        self._ids = itertools.count(1)
        self._task: asyncio.Task | None = None

    def streams(self, symbols: Iterable[str] | None = None) -> list[str]:
        chosen = sorted(self.symbols if symbols is None else symbols)
        return [f"{symbol.lower()}@{kind}" for symbol in chosen for kind in STREAM_KINDS]

    def add(self, symbols: list[str]) -> None:
        self.symbols.update(symbols)
        if self.connected and symbols:
            self._commands.put_nowait(("SUBSCRIBE", self.streams(symbols)))

    def remove(self, symbols: list[str]) -> None:
        self.symbols.difference_update(symbols)
        if self.connected and symbols:
            self._commands.put_nowait(("UNSUBSCRIBE", self.streams(symbols)))

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name=f"md-connection-{self.number}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    # --- the connection loop ----------------------------------------------------------------------

    async def _run(self) -> None:
        retry = Retry(self.options.retry)
        loop = asyncio.get_running_loop()
        while True:
            started = loop.time()
            try:
                await self._connect_once()
            except PlannedReconnect as reason:
                logger.info("exchange connection %d: %s; reconnecting now", self.number, reason)
                retry.reset()
            except Exception as error:
                delay = retry.failed(lasted=loop.time() - started)
                where = self.options.ws_url  # a resolver or refusal error alone does not say what was tried
                if delay is None:
                    logger.error(
                        "exchange connection %d to %s failed (%s); giving up", self.number, where, _describe(error)
                    )
                    return
                logger.warning(
                    "exchange connection %d to %s failed (%s); reconnecting in %.2f s",
                    self.number,
                    where,
                    _describe(error),
                    delay,
                )
                await asyncio.sleep(delay)
            self.reconnects += 1

    async def _connect_once(self) -> None:
        in_url = self.streams()[: self.options.url_streams]
        url = f"{self.options.ws_url}/stream?streams={'/'.join(in_url)}" if in_url else f"{self.options.ws_url}/stream"
        async with connect(url, open_timeout=self.options.open_timeout, close_timeout=2, max_size=2**23) as ws:
            self._opened(in_url)
            try:
                await self._session(ws)
            finally:
                self._closed()

    def _opened(self, in_url: list[str]) -> None:
        self.connected = True
        self.connections += 1
        self._pending.clear()
        while not self._commands.empty():
            self._commands.get_nowait()  # the URL and the lines below cover the current set afresh
        wanted = self.streams()
        named, wanted_set = set(in_url), set(wanted)
        missing = [s for s in wanted if s not in named]  # added while we were connecting, or beyond the URL
        extra = [s for s in in_url if s not in wanted_set]  # removed while we were connecting
        if missing:
            self._commands.put_nowait(("SUBSCRIBE", missing))
        if extra:
            self._commands.put_nowait(("UNSUBSCRIBE", extra))
        logger.info("exchange connection %d open with %d streams", self.number, len(wanted))

    def _closed(self) -> None:
        self.connected = False
        self.worker.reset_books(self.symbols)  # events were missed: every book here must resync

    async def _session(self, ws: ClientConnection) -> None:
        sender = asyncio.create_task(self._send_commands(ws), name=f"md-commands-{self.number}")
        try:
            await self._read(ws)
        finally:
            sender.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await sender

    async def _read(self, ws: ClientConnection) -> None:
        loop = asyncio.get_running_loop()
        retire_at = loop.time() + self.options.max_connection_age
        last_frame = loop.time()
        while True:
            if loop.time() >= retire_at:
                raise PlannedReconnect("the connection reached its maximum age")
            # One timeout for all the frames that arrive before it fires, not one per frame (which
            # cost a tenth of the worker's CPU); when it fires after a frame came, it starts again
            # from that frame. handle_frame is a plain call, not a coroutine, so the timeout can
            # only interrupt a recv, which websockets allows without losing a message.
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a stop's cancellation
            # when a frame arrives at the same moment.
            deadline = asyncio.timeout_at(min(last_frame + self.options.stale_after, retire_at))
            try:
                async with deadline:
                    while True:
                        raw = await ws.recv(decode=False)  # bytes: orjson reads them as they are
                        last_frame = loop.time()
                        self.worker.handle_frame(raw, self)
            except TimeoutError:
                if not deadline.expired():
                    raise  # not ours
                now = loop.time()
                if now < retire_at and now - last_frame >= self.options.stale_after:
                    raise StaleFeed(f"no frame for {self.options.stale_after:g} s") from None

    async def _send_commands(self, ws: ClientConnection) -> None:
        """SUBSCRIBE / UNSUBSCRIBE in batches, paced under Binance's messages-per-second limit."""
        pause = 1.0 / self.options.messages_per_second
        while True:
            method, streams = await self._commands.get()
            for start in range(0, len(streams), self.options.subscribe_batch):
                batch = streams[start : start + self.options.subscribe_batch]
                request_id = next(self._ids)
                self._pending[request_id] = (method, len(batch))
                await ws.send(orjson.dumps({"method": method, "params": batch, "id": request_id}).decode())
                await asyncio.sleep(pause)

    def on_reply(self, event: SubscriptionResult | ExchangeError) -> None:
        method, count = self._pending.pop(event.id, ("a request", 0)) if isinstance(event.id, int) else ("a request", 0)
        if isinstance(event, SubscriptionResult):
            logger.debug("connection %d: %s of %d streams acknowledged", self.number, method, count)
            return
        logger.warning(
            "exchange refused %s (%d streams) on connection %d: %s (code %s)",
            method,
            count,
            self.number,
            event.message,
            event.code,
        )


def _book_message(book: OrderBook, top: tuple[list[Level], list[Level]]) -> dict:
    """The orderbook message of a book's top, stamped with the exchange's time of its last event."""
    bids, asks = top
    timestamp = protocol.iso_from_millis(book.event_time) if book.event_time else protocol.now_iso()
    return protocol.orderbook(
        symbol=book.symbol,
        bids=bids,
        asks=asks,
        timestamp=timestamp,
        last_update_id=book.last_update_id,
        checksum=book_checksum(bids, asks),
    )


def _describe(error: BaseException) -> str:
    """A short reason for a log line; exchange URLs carry no credentials, but keep lines short anyway."""
    text = str(error) or type(error).__name__
    return f"{type(error).__name__}: {normalize.excerpt(text, 160)}"
