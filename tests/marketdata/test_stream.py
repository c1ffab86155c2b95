"""The worker streams the exchange into channel-layer groups, keeps books in sync and survives a bad feed."""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from dataclasses import replace
from decimal import Decimal
from types import SimpleNamespace

import orjson
import pytest
from channels.layers import get_channel_layer
from django.conf import settings
from prometheus_client import REGISTRY

import marketdata.stream
from marketdata import latest, normalize, status
from marketdata.checksum import book_checksum
from marketdata.models import Symbol
from marketdata.normalize import DepthSnapshot
from marketdata.orderbook import OrderBook
from marketdata.stream import MarketDataWorker, WorkerOptions, load_enabled_symbols
from realtime import groups, history, protocol, publish
from tests.marketdata.builders import DEPTH_UPDATE_SAMPLE, combined, sample, snapshot
from tests.marketdata.exchange import running_simulator
from tests.marketdata.worker import (
    QUICK,
    Collector,
    GroupSpy,
    running_worker,
    static_symbols,
    streams_of,
    subscribed,
)
from tests.support import TIMEOUT


@pytest.fixture
async def simulator():
    async with running_simulator() as simulator:
        yield simulator


@pytest.fixture(autouse=True)
async def empty_market_layer():
    """Groups and channels of the in-memory layer outlive a test; start and end each test without them."""
    layer = get_channel_layer(groups.MARKET_LAYER)
    await layer.flush()
    yield
    await layer.flush()


async def book_at(spy: GroupSpy, seen: dict, update_id: int) -> dict:
    """The published book at `update_id`: `seen` (the last one received) or one still to come."""
    if seen["last_update_id"] == update_id:
        return seen
    return await spy.next(lambda m: m["last_update_id"] == update_id)


def trade_with_id(trade_id: int):
    return lambda message: message["type"] == "trade" and message.get("trade_id") == trade_id


# --- what is published ------------------------------------------------------------------------------


async def test_a_trade_is_published_with_the_values_the_exchange_sent():
    async with running_simulator(trade_chance=0) as simulator:
        spy = await GroupSpy.join(groups.market("trades", "btcusdt"))
        collector = Collector()
        async with running_worker(simulator, [collector]):
            await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
            sent = simulator.print_trade("BTCUSDT", "50123.45", "0.75", buyer_maker=True)

            published = await spy.next(trade_with_id(sent["t"]))
            await collector.wait_for(trade_with_id(sent["t"]))

            assert published == {**normalize.trade(sent), "seq": published["seq"]}
            assert (published["price"], published["quantity"], published["side"]) == ("50123.45", "0.75", "sell")
            assert latest.last_trade_price("BTCUSDT") == Decimal("50123.45")


async def test_trades_are_numbered_per_symbol_and_kept_in_their_history():
    async with running_simulator(trade_chance=0) as simulator:
        spy = await GroupSpy.join(groups.market("trades", "btcusdt"))
        async with running_worker(simulator):
            await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
            sent = [simulator.print_trade("BTCUSDT", f"5000{n}", "1", buyer_maker=False) for n in range(3)]
            published = [await spy.next(trade_with_id(trade["t"])) for trade in sent]

    seqs = [message["seq"] for message in published]
    assert seqs == list(range(seqs[0], seqs[0] + 3))
    store = history.get_history()
    position = await store.position(history.trades_key("BTCUSDT"))
    kept = await store.since(history.trades_key("BTCUSDT"), position.epoch, seqs[0] - 1)
    assert [orjson.loads(text) for text in kept][-3:] == published


async def test_a_ticker_is_published_unchanged_and_kept_as_the_latest_frame(simulator):
    spy = await GroupSpy.join(groups.market("ticker", "ethusdt"))
    collector = Collector()
    async with running_worker(simulator, [collector]):
        published = await spy.next()
        await collector.wait_for(lambda m: m["type"] == "ticker" and m["symbol"] == "ETHUSDT")
        stored = orjson.loads((await latest.asnapshots("ticker", ["ETHUSDT"]))["ETHUSDT"])

    history = simulator.history["ethusdt@ticker"]
    sent = [p for p in history if protocol.iso_from_millis(p["E"]) == published["timestamp"]]
    assert published == {**normalize.ticker(sent[-1]), "seq": published["seq"]}
    assert (stored["type"], stored["symbol"]) == ("ticker", "ETHUSDT")
    assert stored["timestamp"] >= published["timestamp"]
    assert stored["seq"] >= published["seq"]


async def test_tickers_and_books_are_numbered_one_by_one_per_symbol(simulator):
    spy = await GroupSpy.join(groups.market("ticker", "ethusdt"), groups.market("orderbook", "ethusdt"))
    seqs: dict[str, list[int]] = {"ticker": [], "orderbook": []}
    async with running_worker(simulator):
        while min(len(numbers) for numbers in seqs.values()) < 3:
            message = await spy.next()
            seqs[message["type"]].append(message["seq"])

    for kind, numbers in seqs.items():
        assert numbers == list(range(numbers[0], numbers[0] + len(numbers))), kind


async def test_every_published_order_book_carries_the_checksum_of_its_levels(simulator):
    spy = await GroupSpy.join(groups.market("orderbook", "btcusdt"))
    async with running_worker(simulator):
        books = [await spy.next() for _ in range(3)]

    for book in books:
        assert book["checksum"] == book_checksum(book["bids"], book["asks"])


async def test_the_published_order_book_matches_the_exchange_book(simulator):
    spy = await GroupSpy.join(groups.market("orderbook", "btcusdt"))
    async with running_worker(simulator) as worker:
        first = await spy.next()
        simulator.pause()
        market = simulator.markets["BTCUSDT"]
        final = await book_at(spy, first, market.update_id)
        stored = orjson.loads((await latest.asnapshots("orderbook", ["BTCUSDT"]))["BTCUSDT"])

    expected = market.depth_snapshot(worker.options.depth)
    assert (final["bids"], final["asks"]) == (expected["bids"], expected["asks"])
    assert len(first["bids"]) == len(first["asks"]) == worker.options.depth
    assert Decimal(first["bids"][0][0]) < Decimal(first["asks"][0][0])
    assert stored == final


async def test_order_books_are_published_at_most_once_per_interval(simulator):
    spy = await GroupSpy.join(groups.market("orderbook", "btcusdt"))
    async with running_worker(simulator, publish_every=0.2):
        await spy.next()
        loop = asyncio.get_running_loop()
        started = loop.time()
        for _ in range(3):
            await spy.next()
        elapsed = loop.time() - started

    assert elapsed >= 3 * 0.2 * 0.9  # the simulator changes the book every 10 ms


# --- which books a round publishes ------------------------------------------------------------------

BIDS = [["100.00", "1"], ["99.00", "2"], ["98.00", "3"]]
ASKS = [["101.00", "1"], ["102.00", "2"], ["103.00", "3"]]


def depth_frame(first: int, final: int, bids: list | None = None, asks: list | None = None) -> bytes:
    payload = sample(DEPTH_UPDATE_SAMPLE, s="BTCUSDT", U=first, u=final, b=bids or [], a=asks or [])
    return combined("btcusdt@depth@100ms", payload)


@pytest.fixture
def rest_snapshots(monkeypatch) -> list[DepthSnapshot]:
    """The depth snapshots the worker's REST requests get: the last one of the list."""
    snapshots = [snapshot(100, BIDS, ASKS)]

    async def fetch(rest_url, symbol, limit, timeout) -> DepthSnapshot:
        return snapshots[-1]

    monkeypatch.setattr(marketdata.stream, "fetch_depth", fetch)
    return snapshots


@pytest.fixture
def sent_books(monkeypatch) -> list[dict]:
    """The messages the worker sends to the layer, as subscribers get them."""
    sent = []
    send = publish.asend_market_many

    async def recording(frames) -> None:
        sent.extend(orjson.loads(frame.text) for frame in frames)
        await send(frames)

    monkeypatch.setattr(publish, "asend_market_many", recording)
    return sent


async def sync_book(worker: MarketDataWorker, first_diff: bytes) -> None:
    """Feed a diff to an unsynced book and wait while the worker takes a snapshot and bridges it."""
    worker.handle_frame(first_diff, shard=None)
    syncing = [task for task in asyncio.all_tasks() if task.get_name() == "md-sync-BTCUSDT"]
    await asyncio.wait_for(asyncio.gather(*syncing), TIMEOUT)
    assert worker.books["BTCUSDT"].synced


@pytest.fixture
async def book_worker(rest_snapshots) -> MarketDataWorker:
    """A worker (its loops not started) with a BTCUSDT book in sync at update 101, two levels a side
    published; its rounds run when a test calls publish_books."""
    worker = MarketDataWorker(replace(QUICK, depth=2))
    worker.symbols.add("BTCUSDT")
    worker.books["BTCUSDT"] = OrderBook("BTCUSDT")
    await sync_book(worker, depth_frame(100, 101))
    return worker


async def test_a_book_whose_top_changed_is_published_in_the_next_round(book_worker, sent_books):
    await book_worker.publish_books()
    book_worker.handle_frame(depth_frame(102, 102, bids=[["100.00", "7"]]), shard=None)
    await book_worker.publish_books()

    assert [book["bids"][0] for book in sent_books] == [["100.00", "1"], ["100.00", "7"]]


async def test_the_frames_metric_counts_every_frame_read_once_a_round_of_books_ran(book_worker, sent_books):
    def frames_read() -> float:
        return REGISTRY.get_sample_value("marketdata_frames_total")

    await book_worker.publish_books()  # the frames of the fixture's sync are counted
    before = frames_read()
    for update_id in (102, 103, 104):
        book_worker.handle_frame(depth_frame(update_id, update_id, bids=[["100.00", str(update_id)]]), shard=None)
    book_worker.handle_frame(b"not json", shard=SimpleNamespace(number=1))  # read, though refused
    assert frames_read() == before  # not yet: the round brings the metric up to date

    await book_worker.publish_books()
    assert frames_read() - before == 4
    await book_worker.publish_books()  # nothing new read: nothing added
    assert frames_read() - before == 4


async def test_a_book_changed_only_below_its_top_is_sent_again_once_its_diffs_stop(book_worker, sent_books):
    await book_worker.publish_books()
    for update_id, level in ((102, ["98.00", "5"]), (103, ["97.00", "1"])):  # below the two published
        book_worker.handle_frame(depth_frame(update_id, update_id, bids=[level]), shard=None)
        await book_worker.publish_books()
        assert len(sent_books) == 1  # nothing a subscriber sees changed, and diffs keep coming

    await book_worker.publish_books()  # a round without diffs: the book settled

    first, caught_up = sent_books
    assert (caught_up["bids"], caught_up["asks"]) == (first["bids"], first["asks"])
    assert (first["last_update_id"], caught_up["last_update_id"]) == (101, 103)
    assert caught_up["seq"] == first["seq"] + 1


async def test_a_book_changed_only_below_its_top_still_catches_up_while_diffs_keep_coming(
    book_worker, sent_books, monkeypatch
):
    monkeypatch.setattr(marketdata.stream, "BOOK_CATCH_UP_EVERY", 0.05)
    await book_worker.publish_books()
    book_worker.handle_frame(depth_frame(102, 102, bids=[["98.00", "5"]]), shard=None)
    await book_worker.publish_books()
    await asyncio.sleep(0.06)
    book_worker.handle_frame(depth_frame(103, 103, bids=[["98.00", "6"]]), shard=None)
    await book_worker.publish_books()

    assert [book["last_update_id"] for book in sent_books] == [101, 103]


async def test_a_resynced_book_is_published_even_with_the_levels_it_had(book_worker, sent_books, rest_snapshots):
    await book_worker.publish_books()
    book_worker.reset_books(["BTCUSDT"])  # the connection dropped
    rest_snapshots.append(snapshot(200, BIDS, ASKS))
    await sync_book(book_worker, depth_frame(200, 201))
    await book_worker.publish_books()

    first, resynced = sent_books
    assert (resynced["bids"], resynced["asks"]) == (first["bids"], first["asks"])
    assert resynced["last_update_id"] == 201


async def test_a_book_waiting_to_catch_up_is_still_stored_again_so_its_snapshot_does_not_expire(
    book_worker, sent_books, monkeypatch
):
    monkeypatch.setattr(marketdata.stream, "BOOK_RESTORE_EVERY", 0.0)
    stored = []
    store = latest.astore_market_state

    async def spying_store(*, prices=None, snapshots=None) -> None:
        stored.append((snapshots or {}).get(("orderbook", "BTCUSDT")))
        await store(prices=prices, snapshots=snapshots)

    monkeypatch.setattr(latest, "astore_market_state", spying_store)
    await book_worker.publish_books()
    book_worker.handle_frame(depth_frame(102, 102, bids=[["98.00", "5"]]), shard=None)
    await book_worker.publish_books()

    assert len(sent_books) == 1
    assert [orjson.loads(text)["last_update_id"] for text in stored] == [101, 101]


# --- a bad feed ---------------------------------------------------------------------------------------


async def test_malformed_frames_are_logged_and_skipped(simulator, caplog):
    spy = await GroupSpy.join(groups.market("trades", "btcusdt"))
    async with running_worker(simulator):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="marketdata.stream"):
            simulator.send_garbage()
            sent = simulator.print_trade("BTCUSDT", "50000.10", "0.1")
            await spy.next(trade_with_id(sent["t"]))

    assert simulator.connections_accepted == 1  # garbage is not a reason to reconnect
    assert "malformed frame" in caplog.text


async def test_a_dropped_connection_is_reconnected_and_resubscribed(simulator):
    trades = await GroupSpy.join(groups.market("trades", "ethusdt"))
    books = await GroupSpy.join(groups.market("orderbook", "ethusdt"))
    async with running_worker(simulator):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        await books.next()
        dropped_at = simulator.markets["ETHUSDT"].update_id
        simulator.drop_connections()
        await simulator.wait_until(lambda s: s.connections_accepted == 2, TIMEOUT)
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT", connections=1), TIMEOUT)
        sent = simulator.print_trade("ETHUSDT", "3100.00", "2")

        await trades.next(trade_with_id(sent["t"]))
        # Only a book synced again on the new connection can be newer than the drop.
        resynced = await books.next(lambda m: m["last_update_id"] > dropped_at)

    assert resynced["symbol"] == "ETHUSDT"


async def test_server_shutdown_makes_the_worker_reconnect_at_once(simulator, caplog):
    async with running_worker(simulator):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        with caplog.at_level(logging.INFO, logger="marketdata.stream"):
            simulator.announce_shutdown()
            await simulator.wait_until(lambda s: s.connections_accepted == 2, TIMEOUT)
            await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT", connections=1), TIMEOUT)

    assert "server shutdown" in caplog.text
    assert "failed" not in caplog.text


async def test_a_silent_feed_counts_as_a_failure(simulator, caplog):
    async with running_worker(simulator, stale_after=0.3):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        with caplog.at_level(logging.WARNING, logger="marketdata.stream"):
            simulator.pause()
            await simulator.wait_until(lambda s: s.connections_accepted >= 2, TIMEOUT)
        simulator.resume()

    assert "no frame for 0.3 s" in caplog.text


async def test_a_connection_is_replaced_before_it_gets_too_old(simulator, caplog):
    with caplog.at_level(logging.INFO, logger="marketdata.stream"):
        async with running_worker(simulator, max_connection_age=0.2):
            await simulator.wait_until(lambda s: s.connections_accepted >= 3, TIMEOUT)

    assert "maximum age" in caplog.text
    assert "failed" not in caplog.text


async def test_a_gap_in_update_ids_resyncs_the_book(simulator, monkeypatch):
    cleared = []
    clear = latest.aclear_snapshot

    async def recording_clear(stream, symbol):
        cleared.append((stream, symbol))
        await clear(stream, symbol)

    monkeypatch.setattr(latest, "aclear_snapshot", recording_clear)
    books = await GroupSpy.join(groups.market("orderbook", "btcusdt"))
    async with running_worker(simulator) as worker:
        await books.next()  # in sync
        gap_after = simulator.markets["BTCUSDT"].update_id
        simulator.skip_depth_event("BTCUSDT")
        resynced = await books.next(lambda m: m["last_update_id"] > gap_after)  # only after a new snapshot
        simulator.pause()
        market = simulator.markets["BTCUSDT"]
        final = await book_at(books, resynced, market.update_id)

    expected = market.depth_snapshot(worker.options.depth)
    assert worker.resyncs["BTCUSDT"] == 1
    assert ("orderbook", "BTCUSDT") in cleared
    assert (final["bids"], final["asks"]) == (expected["bids"], expected["asks"])


# --- symbols and connections --------------------------------------------------------------------------


async def test_streams_are_named_in_the_combined_stream_url(simulator):
    async with running_worker(simulator):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        (client,) = simulator.clients.values()

    assert client.combined
    assert client.path.startswith("/stream?streams=")
    assert set(client.path.removeprefix("/stream?streams=").split("/")) == streams_of("BTCUSDT", "ETHUSDT")


async def test_subscriptions_stay_under_binances_message_rate(simulator):
    async with running_worker(simulator, url_streams=0, subscribe_batch=1):  # one SUBSCRIBE per stream
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)

    assert simulator.rate_limit_disconnects == 0
    assert simulator.connections_accepted == 1


async def test_enabled_symbols_are_subscribed_and_disabled_ones_unsubscribed(simulator):
    symbols = static_symbols("BTCUSDT")
    async with running_worker(simulator, symbols_loader=symbols) as worker:
        await simulator.wait_until(subscribed("BTCUSDT", connections=1), TIMEOUT)
        symbols.current.add("ETHUSDT")
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT", connections=1), TIMEOUT)
        symbols.current.discard("BTCUSDT")
        await simulator.wait_until(subscribed("ETHUSDT", connections=1), TIMEOUT)

        assert worker.symbols == {"ETHUSDT"}
        assert set(worker.books) == {"ETHUSDT"}
    assert simulator.connections_accepted == 1


async def test_more_streams_than_one_connection_takes_are_sharded(simulator):
    symbols = static_symbols("BTCUSDT", "ETHUSDT", "ADAUSDT")
    async with running_worker(simulator, symbols_loader=symbols, max_streams_per_connection=6) as worker:
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT", "ADAUSDT", connections=2), TIMEOUT)
        sizes = sorted(len(c.subscriptions) for c in simulator.clients.values())

        assert sizes == [3, 6]
        assert len(worker.shards) == 2


async def test_a_malformed_symbol_name_is_ignored(simulator, caplog):
    symbols = static_symbols("BTCUSDT", "not a symbol")
    async with running_worker(simulator, symbols_loader=symbols) as worker:
        await simulator.wait_until(subscribed("BTCUSDT"), TIMEOUT)

        assert worker.symbols == {"BTCUSDT"}
    assert "malformed symbol" in caplog.text


@pytest.mark.django_db(transaction=True)
async def test_enabled_symbols_come_from_the_table_seeded_from_the_settings():
    assert await Symbol.objects.acount() == 0

    first = await load_enabled_symbols()
    await Symbol.objects.filter(name="ETHUSDT").aupdate(enabled=False)
    second = await load_enabled_symbols()

    assert first == sorted(settings.APP.market_symbols)
    assert second == sorted(set(settings.APP.market_symbols) - {"ETHUSDT"})
    assert await Symbol.objects.acount() == len(settings.APP.market_symbols)
    btc = await Symbol.objects.aget(name="BTCUSDT")
    assert (btc.base_asset, btc.quote_asset, btc.enabled) == ("BTC", "USDT", True)


@pytest.mark.django_db(transaction=True)
async def test_the_worker_streams_the_enabled_rows_of_the_symbol_table(simulator):
    await Symbol.objects.abulk_create([Symbol(name="ADAUSDT"), Symbol(name="ETHUSDT", enabled=False)])
    async with running_worker(simulator, symbols_loader=None):
        await simulator.wait_until(subscribed("ADAUSDT"), TIMEOUT)


# --- listeners ----------------------------------------------------------------------------------------


async def test_listeners_receive_every_trade_and_ticker(simulator):
    collector = Collector()
    async with running_worker(simulator, [collector]):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        sent = simulator.print_trade("ETHUSDT", "3000.50", "1.5")
        trade = await collector.wait_for(trade_with_id(sent["t"]))
        ticker = await collector.wait_for(lambda m: m["type"] == "ticker")

    assert trade == normalize.trade(sent)
    assert ticker["symbol"] in {"BTCUSDT", "ETHUSDT"}
    assert {m["type"] for m in collector.messages} <= {"trade", "ticker"}


async def test_a_slow_listener_does_not_stall_publishing_and_drops_are_logged(simulator, caplog):
    release = asyncio.Event()

    async def stuck(messages: list[dict]) -> None:
        await release.wait()

    spy = await GroupSpy.join(groups.market("trades", "btcusdt"))
    async with running_worker(simulator, [stuck], listener_queue=2):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        sent = [simulator.print_trade("BTCUSDT", f"5000{n}.00", "0.1") for n in range(5)]
        for trade in sent:
            await spy.next(trade_with_id(trade["t"]))
        release.set()

    dropped = [r for r in caplog.records if r.levelno == logging.ERROR and "dropped BTCUSDT trade" in r.getMessage()]
    assert dropped


async def test_a_failing_listener_is_logged_and_keeps_receiving(simulator, caplog):
    class FailsFirst(Collector):
        async def __call__(self, messages: list[dict]) -> None:
            first = not self.messages
            await super().__call__(messages)
            if first:
                raise RuntimeError("listener bug")

    listener = FailsFirst()
    async with running_worker(simulator, [listener]):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        first = simulator.print_trade("BTCUSDT", "50000.00", "0.2")
        await listener.wait_for(trade_with_id(first["t"]))  # in the failing call or after it
        later = simulator.print_trade("BTCUSDT", "50001.00", "0.2")
        await listener.wait_for(trade_with_id(later["t"]))  # in a call after the failure

    assert "market listener" in caplog.text
    assert "listener bug" in caplog.text


# --- status and stopping ------------------------------------------------------------------------------


async def test_the_worker_stops_even_when_a_call_swallows_its_cancellation(simulator, monkeypatch):
    """A cancellation can end inside a library call (a Redis client's retry, a thread hop) instead of
    reaching the worker's loops: the worker must stop all the same (running_worker checks it does)."""
    sending = asyncio.Event()

    async def swallowing(frames) -> None:
        sending.set()
        with contextlib.suppress(asyncio.CancelledError):  # the cancellation ends here
            await asyncio.sleep(3600)

    monkeypatch.setattr(publish, "asend_market_many", swallowing)
    async with running_worker(simulator):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)
        simulator.print_trade("BTCUSDT", "50000.00", "0.1")
        await asyncio.wait_for(sending.wait(), TIMEOUT)  # a publish is in flight when the stop comes


async def test_the_worker_writes_a_status_record_for_ws_status(simulator, monkeypatch):
    records = Collector()
    monkeypatch.setattr(status, "awrite_status", lambda record: records([record]))
    async with running_worker(simulator):
        record = await records.wait_for(lambda r: r["connected"] and r["last_message_at"] and r["books_in_sync"] == 2)

    assert record["source"] == "simulator"
    assert record["simulated"] is True
    assert record["symbols"] == ["BTCUSDT", "ETHUSDT"]
    assert record["last_message_at"].endswith("Z")
    assert record["updated_at"].endswith("Z")
    assert record["epoch"] == publish.MARKET_EPOCH  # of the ticker and book seqs, for positions


async def test_stopping_closes_the_connections_and_says_so_in_the_status(simulator):
    async with running_worker(simulator):
        await simulator.wait_until(subscribed("BTCUSDT", "ETHUSDT"), TIMEOUT)

    await simulator.wait_until(lambda s: not s.clients, TIMEOUT)
    record = status.read_status()
    assert record["connected"] is False
    assert record["source"] == "simulator"


def test_options_come_from_the_settings():
    options = WorkerOptions.from_settings(stale_after=12)

    assert options.ws_url == settings.APP.binance_ws_url
    assert options.rest_url == settings.APP.binance_rest_url
    assert options.depth == settings.APP.orderbook_depth
    assert options.simulated is (settings.APP.market_source == "simulator")
    assert options.stale_after == 12


def test_the_workers_reconnect_backoff_is_capped_by_ws_reconnect_timeout(settings):
    from dataclasses import replace

    from marketdata.stream import WorkerOptions

    settings.APP = replace(settings.APP, ws_reconnect_timeout=7)
    assert WorkerOptions.from_settings().retry.maximum == 7


async def test_a_quiet_book_in_sync_is_stored_again_so_its_snapshot_does_not_expire(simulator, monkeypatch):
    monkeypatch.setattr(marketdata.stream, "BOOK_RESTORE_EVERY", 0.2)
    stored_while_quiet = asyncio.Event()
    stores = []
    store = latest.astore_market_state

    async def spying_store(*, prices=None, snapshots=None) -> None:
        await store(prices=prices, snapshots=snapshots)
        text = (snapshots or {}).get(("orderbook", "BTCUSDT"))
        if text is not None and simulator.paused:
            stores.append(text)
            if len(stores) >= 3:  # one in-flight diff may land after the pause; three only by refresh
                stored_while_quiet.set()

    monkeypatch.setattr(latest, "astore_market_state", spying_store)
    spy = await GroupSpy.join(groups.market("orderbook", "btcusdt"))
    async with running_worker(simulator):
        first = await spy.next()
        simulator.pause()  # no more changes: only the refresh stores the book now
        await asyncio.wait_for(stored_while_quiet.wait(), TIMEOUT)
        stored = orjson.loads((await latest.asnapshots("orderbook", ["BTCUSDT"]))["BTCUSDT"])
    assert stored["last_update_id"] >= first["last_update_id"]


# --- the read loop's timeout ----------------------------------------------------------------------


def frame_of(stream: str, payload: dict) -> bytes:
    return orjson.dumps({"stream": stream, "data": payload})


@pytest.mark.parametrize(
    "raw",
    [
        frame_of("btcusdt@trade", {"e": "trade", "E": 1, "s": "BTCUSDT", "t": 1, "p": "1.5", "q": "2", "m": False}),
        frame_of("btcusdt@depth@100ms", {"e": "depthUpdate", "E": 1, "s": "BTCUSDT", "U": 1, "u": 2, "b": [], "a": []}),
        b'{"result": null, "id": 1}',
        b"not json",
    ],
)
async def test_handling_a_frame_never_suspends_so_the_read_timeout_can_only_end_a_recv(raw):
    worker = MarketDataWorker(QUICK)
    worker.apply_symbols({"BTCUSDT"})
    try:
        assert not inspect.iscoroutinefunction(worker.handle_frame)  # so it cannot wait for anything
        assert worker.handle_frame(raw, worker.shards[0]) is None
    finally:
        for task in [*worker._syncing.values(), *worker._background, *(s._task for s in worker.shards)]:
            task.cancel()


async def test_a_book_whose_send_failed_is_compared_with_what_was_sent_before_it(book_worker, sent_books, monkeypatch):
    await book_worker.publish_books()  # sent: the book at update 101
    book_worker.handle_frame(depth_frame(102, 102, bids=[["100.00", "7"]]), shard=None)  # a new top
    send = publish.asend_market_many

    async def failing(frames) -> None:
        raise ConnectionError("redis is away")

    monkeypatch.setattr(publish, "asend_market_many", failing)
    with pytest.raises(ConnectionError):
        await book_worker.publish_books()
    monkeypatch.setattr(publish, "asend_market_many", send)
    book_worker.handle_frame(depth_frame(103, 103, bids=[["98.00", "5"]]), shard=None)  # below the top only
    await book_worker.publish_books()

    # The new top never reached anyone: the book goes out at once, not deferred as if it had.
    assert [(book["last_update_id"], book["bids"][0]) for book in sent_books] == [
        (101, ["100.00", "1"]),
        (103, ["100.00", "7"]),
    ]
