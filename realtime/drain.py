"""Graceful drain: on SIGTERM a daphne process stops taking connections, tells every client to
reconnect elsewhere and stops once they are gone, or after DRAIN_SECONDS at the latest.

Order matters. First the listening sockets close, so a proxy's next attempt (nginx tries the next
upstream on a refused connection) and every reconnect land on another instance. Then each
connection is told through the callback it registered (`enter`), which runs the session's restart
as a task of the connection's runner, like a revocation: an error frame with code 1012 and a close
with 1012 (`Session.restart`). A connection
that reached the application in between is refused the same way (`refusal`); HTTP requests in
progress are waited for (`counted`). Only when the connections and requests are gone, or the bound
has passed, does Twisted's own SIGTERM handler run: it stops the reactor, and daphne cancels what
is left. Were Twisted's handler first, daphne would cancel every connection at once and the
clients would see 1006 with no reason to reconnect elsewhere.

A second SIGTERM stops at once. SIGINT (Ctrl-C) keeps Twisted's immediate stop.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Callable

from realtime import protocol
from realtime.protocol import Code

logger = logging.getLogger(__name__)

REFUSAL_MESSAGE = "Server restarting: connect again (another instance serves you)"


class Ticket:
    """One connection's (or request's) place in the drain. A connection passes `on_restart`, called
    when the drain begins (no task or queue per connection: most never drain); `next_event` waits
    for the same moment, for whoever prefers to await it."""

    __slots__ = ("_waiter", "on_restart", "restarted")

    def __init__(self, on_restart: Callable[[], None] | None = None) -> None:
        self.on_restart = on_restart
        self.restarted = False
        self._waiter: asyncio.Event | None = None

    async def next_event(self) -> dict:
        """The restart event, once (waits for the drain)."""
        while not self.restarted:
            self._waiter = self._waiter or asyncio.Event()
            await self._waiter.wait()
            self._waiter.clear()
        self.restarted = False
        return {"type": protocol.RESTART_EVENT}

    def restart(self) -> None:
        self.restarted = True
        if self.on_restart is not None:
            self.on_restart()
        if self._waiter is not None:
            self._waiter.set()


class Drain:
    """The live connections and requests of this process, and whether it is draining."""

    def __init__(self) -> None:
        self.draining = False
        self._tickets: set[Ticket] = set()
        self._empty: asyncio.Event | None = None

    def __len__(self) -> int:
        return len(self._tickets)

    def enter(self, on_restart: Callable[[], None] | None = None) -> Ticket:
        """A new connection; while draining it is told to restart as soon as it is handled."""
        ticket = Ticket(on_restart)
        self._tickets.add(ticket)
        if self.draining:
            ticket.restart()
        return ticket

    def leave(self, ticket: Ticket) -> None:
        self._tickets.discard(ticket)
        if not self._tickets and self._empty is not None:
            self._empty.set()

    def refusal(self) -> tuple[int, str] | None:
        """What a connection opened while draining is refused with (before admission)."""
        return (Code.SERVICE_RESTART, REFUSAL_MESSAGE) if self.draining else None

    async def run(self, seconds: float, stop_listening: Callable[[], None]) -> int:
        """Stop listening, tell every connection to go, wait until none is left or `seconds` pass;
        the number still open at the end is returned."""
        self.draining = True
        stop_listening()
        self._empty = asyncio.Event()
        for ticket in list(self._tickets):
            ticket.restart()
        if self._tickets:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._empty.wait(), seconds)
        return len(self._tickets)


process = Drain()  # this process's connections (realtime.consumers enters and leaves them)


def counted(app):
    """An ASGI application whose requests the drain waits for: an HTTP request in progress (an order
    being placed) finishes and is answered before the server stops."""

    async def counted_app(scope, receive, send):
        ticket = process.enter()
        try:
            return await app(scope, receive, send)
        finally:
            process.leave(ticket)

    return counted_app


def install(seconds: float) -> None:
    """Under daphne, drain on SIGTERM. Called when the ASGI application loads: daphne has imported
    Twisted's reactor by then, and its signal handlers are in place once the reactor runs."""
    reactor = sys.modules.get("twisted.internet.reactor")
    if reactor is None:  # not under daphne (tests, other servers): nothing to chain to
        return
    let_daphne_close_with_1012()
    reactor.callWhenRunning(take_sigterm, reactor, seconds)


def let_daphne_close_with_1012() -> None:
    """Daphne closes through autobahn's `sendClose`, which lets an application use only 1000 and
    3000-4999 and raises for anything else; RFC 6455's registry gives 1012 (Service Restart) to
    servers, and browsers report it. So daphne's close writes the frame itself for that one code."""
    from daphne.ws_protocol import WebSocketProtocol

    original = WebSocketProtocol.serverClose
    if getattr(original, "closes_with_1012", False):
        return

    def server_close(self, code=None):
        if code == Code.SERVICE_RESTART:
            self.sendCloseFrame(code=code, isReply=False)
        else:
            original(self, code)

    server_close.closes_with_1012 = True
    WebSocketProtocol.serverClose = server_close


def take_sigterm(reactor, seconds: float, drain: Drain = process) -> None:
    """Replace the SIGTERM handler (Twisted's, installed as the reactor started) by a drain that
    ends by calling it."""
    previous = signal.getsignal(signal.SIGTERM)  # Twisted's: it stops the reactor
    loop = asyncio.get_event_loop()  # the reactor's asyncio loop
    started: list[asyncio.Task] = []

    def stop(signum: int) -> None:
        if callable(previous):
            previous(signum, None)
        else:
            reactor.stop()

    def begin(signum: int) -> None:
        if started:
            logger.warning("second SIGTERM while draining: stopping now")
            stop(signum)
            return
        started.append(loop.create_task(drain_then_stop(signum)))

    async def drain_then_stop(signum: int) -> None:
        began = time.monotonic()
        logger.info("SIGTERM: draining %d connections and requests (at most %g s)", len(drain), seconds)
        left = await drain.run(seconds, lambda: stop_listening(reactor))
        logger.info("drained in %.1f s, %d connections left; stopping", time.monotonic() - began, left)
        stop(signum)

    # A signal handler may run between any two bytecodes: it only schedules, the loop does the work.
    signal.signal(signal.SIGTERM, lambda signum, frame: loop.call_soon_threadsafe(begin, signum))


def stop_listening(reactor) -> None:
    """Close every listening socket of the reactor (daphne's endpoints): new connections are refused."""
    from twisted.internet import tcp

    for reader in list(reactor.getReaders()):
        if isinstance(reader, tcp.Port):  # unix sockets' Port is a subclass
            logger.info("no longer listening on %s", reader.getHost())
            reader.stopListening()
