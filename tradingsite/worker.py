"""The background half of the system: the market-data worker with the paper-trading engine and bots.

`manage.py runstream` runs it as its own process (with REDIS_URL); `manage.py serve` runs it inside
the server's event loop (the embedded mode). Paper fills and bot orders must happen once, so with
Redis any number of these processes may run and exactly one leads: it holds a lease in Redis
(leadership.lease) and fences its fills with the lease's token (leadership.fence); the others stand
by, connected to nothing, and the first to see the lease free takes over: it connects to the
exchange, resynchronises the books and resumes the engine. In the embedded mode there is one
process and no election.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import time

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connections

from accounts import engine
from leadership import fence
from leadership import metrics as election
from leadership.lease import LeaseTerm, LeaseTiming, RedisLease
from marketdata import status
from marketdata.stream import WorkerOptions, run_worker
from realtime import protocol, redis_client

logger = logging.getLogger(__name__)

# Seconds the worker keeps a database connection (health-checked) when nothing else keeps it.
WORKER_CONN_MAX_AGE = 600


# Net new container objects (dicts, lists, tuples) before the garbage collector's youngest
# generation is scanned; Python's default is 700. Under a full feed a batch holds thousands of
# short-lived messages, frames and events at once, which reference counting frees, and at 700 the
# worker ran about 7 collections a second that found little: 51-56 ms of CPU every 10 s (measured
# with gc.callbacks at 100 symbols; at 20,000 it ran none in the same windows). Garbage in reference
# cycles is still collected, only after 20,000 allocations instead of 700.
WORKER_GC_THRESHOLD = 20_000


def tune_garbage_collector() -> None:
    """Keep what is loaded so far out of the collector's full scans, and scan young objects rarely.

    Everything loaded before the worker starts (Django, the apps) lives as long as the process, and
    the full collections re-scanned it about once a second under a full feed (measured: a sixth of
    the worker's CPU), as tradingsite/asgi.py does for the gateway. Call it once, in the worker's
    own process.
    """
    gc.freeze()
    gc.set_threshold(WORKER_GC_THRESHOLD, *gc.get_threshold()[1:])


def keep_database_connections() -> None:
    """Let this process (the worker) keep its database connections instead of one per trip.

    Its database work runs in one thread, a paper-matching run after another under a full feed, and
    with Django's default (CONN_MAX_AGE 0) each run opened and closed a connection, which on SQLite
    cost more than the run's query. Web processes keep the default: under ASGI a request's sync code
    runs in a thread of its own, where a kept connection would only linger. Left alone: a database
    whose connections a pool keeps (PostgreSQL with DATABASE_POOL_SIZE), and a positive
    DATABASE_CONN_MAX_AGE. It changes the process's settings.DATABASES: call it once, in the worker's
    own process, before the first query.
    """
    for alias in connections:
        conf = connections.settings[alias]
        if conf.get("OPTIONS", {}).get("pool") or conf.get("CONN_MAX_AGE"):
            continue
        conf.update(CONN_MAX_AGE=WORKER_CONN_MAX_AGE, CONN_HEALTH_CHECKS=True)


async def run_market_and_bots(stop: asyncio.Event, options: WorkerOptions) -> None:
    """Until `stop` is set: lead (stream, match, run bots) when elected, or stand by (with Redis)."""
    app = settings.APP
    if app.embedded:
        await run_term(stop, options)
        return
    if app.worker_metrics_port:
        from prometheus_client import start_http_server

        start_http_server(app.worker_metrics_port, addr=app.worker_metrics_addr)
    lease = RedisLease(
        redis_client.async_client(app.redis_url), holder=worker_name(), timing=LeaseTiming(app.worker_lease_ttl)
    )
    await run_elected(stop, options, lease)


async def run_term(stop: asyncio.Event, options: WorkerOptions) -> None:
    """Stream market data, match paper orders on every trade and run the bots, until `stop` is set."""
    try:
        await asyncio.gather(
            run_worker(stop, listeners=(engine.handle_market_messages,), options=options),
            engine.run_bots(stop),
        )
    finally:
        await engine.drain()  # fills already started are committed and published before exit


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


async def run_elected(stop: asyncio.Event, options: WorkerOptions, lease: RedisLease) -> None:
    """Stand by until the lease is free, lead until it is lost or `stop` is set, and again."""
    timing = lease.timing
    logger.info("worker %s standing by for the lease (ttl %gs)", lease.holder, timing.ttl)
    unreachable = False  # log an outage once, not at every poll
    while not stop.is_set():
        sent_at = time.monotonic()
        try:
            token = await _try_acquire(lease)
        except Exception as error:  # Redis or the database away: keep standing by
            if not unreachable:
                logger.warning("could not try for the worker lease (retrying every %gs): %s", timing.poll_every, error)
            unreachable, token = True, None
        else:
            if unreachable:
                logger.info("worker %s can try for the lease again", lease.holder)
            unreachable = False
        if token is None:
            await _wait(stop, timing.poll_every)
            continue
        await _lead(stop, options, lease, LeaseTerm.started(token, sent_at, timing))
        if not stop.is_set():
            logger.warning("worker %s stepped down; standing by", lease.holder)
            await _wait(stop, timing.poll_every)


async def _try_acquire(lease: RedisLease) -> int | None:
    """The new term's token if the lease was free; it starts above every token the database has seen."""
    floor = await database_sync_to_async(fence.fence_high_water)()
    return await asyncio.wait_for(lease.acquire(floor=floor), lease.timing.trusted_for)


async def _lead(stop: asyncio.Event, options: WorkerOptions, lease: RedisLease, term: LeaseTerm) -> None:
    try:
        await database_sync_to_async(fence.fence_claim)(token=term.token, holder=lease.holder)
    except Exception as error:  # StaleLeader (a newer term began meanwhile), or the database away
        logger.warning("worker %s could not start term %s: %s", lease.holder, term.token, error)
        with contextlib.suppress(Exception):
            await lease.release(term.token)
        return
    logger.info("worker %s leads with fencing token %s", lease.holder, term.token)
    record = status.leader_record(worker=lease.holder, fence=term.token, since=protocol.now_iso())
    term_over = asyncio.Event()
    reset = fence.current.set(term.token)  # every task and ORM call of this term carries it
    election.TERMS.inc()
    election.IS_LEADER.set(1)
    election.FENCE_TOKEN.set(term.token)
    try:
        # The keeper and the work both end when term_over is set (not by cancellation, which
        # asyncio.wait_for may swallow): by the keeper's own return, by the work failing, or at stop.
        relay = asyncio.create_task(_set_when(stop, term_over), name="worker-stop-relay")
        work = asyncio.create_task(run_term(term_over, options), name="worker-term")
        keeper = asyncio.create_task(_keep(lease, term, record, term_over), name="worker-lease")
        await asyncio.wait([work, keeper], return_when=asyncio.FIRST_COMPLETED)
        term_over.set()
        relay.cancel()
        election.IS_LEADER.set(0)
        election.FENCE_TOKEN.set(0)
        outcome, _ = await asyncio.gather(work, keeper, return_exceptions=True)
        if isinstance(outcome, Exception):
            logger.error("worker %s: its term failed", lease.holder, exc_info=outcome)
    finally:
        fence.current.reset(reset)
        election.IS_LEADER.set(0)
        election.FENCE_TOKEN.set(0)
        if not stop.is_set():
            election.STEP_DOWNS.inc()
        else:
            with contextlib.suppress(Exception):
                await status.aclear_leader()
        # Hand over at once instead of after the TTL (a no-op when the lease is already another's).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(lease.release(term.token), lease.timing.trusted_for)
    logger.info("worker %s ended term %s", lease.holder, term.token)


async def _set_when(stop: asyncio.Event, term_over: asyncio.Event) -> None:
    await stop.wait()
    term_over.set()


async def _keep(lease: RedisLease, term: LeaseTerm, record: dict, term_over: asyncio.Event) -> None:
    """Renew the lease well inside its TTL; return when it is lost, in doubt for too long, or the term is over."""
    timing = lease.timing
    last_sent = time.monotonic()
    await _publish_leader(record, timing)
    while True:
        if await _wait(term_over, term.next_renewal(last_sent, time.monotonic(), timing)):
            return
        if term.expired(time.monotonic()):
            logger.error("worker %s could not renew its lease in time: stepping down", lease.holder)
            return
        last_sent = time.monotonic()
        try:
            renewed = await asyncio.wait_for(lease.renew(term.token), max(0.1, term.valid_until - last_sent))
        except Exception as error:
            election.RENEWAL_FAILURES.inc()
            logger.warning("lease renewal failed (%s); the term ends in %.1fs", error, term.valid_until - last_sent)
            continue
        if not renewed:
            logger.error("worker %s lost its lease to another worker: stepping down", lease.holder)
            return
        term = term.renewed(last_sent, timing)
        await _publish_leader(record, timing)


async def _publish_leader(record: dict, timing: LeaseTiming) -> None:
    """The leader record for /ws/status; bounded in time, so the keeper never misses its deadline for it."""
    try:
        fresh = {**record, "updated_at": protocol.now_iso()}
        await asyncio.wait_for(status.awrite_leader(fresh, timing.ttl), timing.renew_every)
    except Exception as error:
        logger.warning("could not write the leader record: %r", error)


async def _wait(stop: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds`; True if `stop` was set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
    return stop.is_set()
