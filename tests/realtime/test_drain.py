"""realtime.drain: on SIGTERM, stop listening, tell every connection to restart, wait for them (bounded),
then hand over to the server's own SIGTERM handler. Without a server: fake listeners and handlers."""

from __future__ import annotations

import asyncio
import signal
import sys

import pytest

from realtime import drain, protocol
from realtime.drain import Drain
from realtime.protocol import Code
from tests.support import TIMEOUT

RESTART = {"type": protocol.RESTART_EVENT}


async def next_event(ticket: drain.Ticket) -> dict:
    return await asyncio.wait_for(ticket.next_event(), TIMEOUT)


def has_event(ticket: drain.Ticket) -> bool:
    return ticket.restarted


async def test_nothing_is_refused_and_no_event_is_waiting_before_a_drain():
    process = Drain()
    ticket = process.enter()

    assert process.refusal() is None
    assert not process.draining
    assert not has_event(ticket)


async def test_listening_stops_before_any_connection_is_told_to_restart():
    process = Drain()
    tickets = [process.enter() for _ in range(3)]
    told_when_listening_stopped = []

    async def leave_when_told(ticket) -> None:
        await next_event(ticket)
        process.leave(ticket)

    leaving = [asyncio.create_task(leave_when_told(ticket)) for ticket in tickets]
    left = await process.run(TIMEOUT, lambda: told_when_listening_stopped.extend(map(has_event, tickets)))
    await asyncio.gather(*leaving)

    assert told_when_listening_stopped == [False, False, False]
    assert left == 0


async def test_every_connection_gets_one_restart_event():
    process = Drain()
    tickets = [process.enter() for _ in range(3)]

    await process.run(0.01, lambda: None)

    for ticket in tickets:
        assert await next_event(ticket) == RESTART
        assert not has_event(ticket)


async def test_the_drain_ends_as_soon_as_the_last_connection_left():
    process = Drain()
    first, second = process.enter(), process.enter()
    running = asyncio.create_task(process.run(3600, lambda: None))
    await next_event(first)
    process.leave(first)
    await asyncio.sleep(0)
    assert not running.done()

    process.leave(second)

    assert await asyncio.wait_for(running, TIMEOUT) == 0


async def test_a_connection_that_does_not_go_is_left_to_the_server_after_the_bound():
    process = Drain()
    process.enter()
    leaves = process.enter()
    process.leave(leaves)

    assert await process.run(0.01, lambda: None) == 1


async def test_a_process_without_connections_drains_at_once():
    assert await asyncio.wait_for(Drain().run(3600, lambda: None), TIMEOUT) == 0


async def test_a_connection_opened_while_draining_is_refused_with_1012_and_told_to_restart():
    process = Drain()
    await process.run(0.01, lambda: None)

    late = process.enter()

    code, message = process.refusal()
    assert code == Code.SERVICE_RESTART == 1012
    assert "another instance" in message
    assert await next_event(late) == RESTART


# --- the SIGTERM handler --------------------------------------------------------------------------


class FakeReactor:
    """What take_sigterm uses of Twisted's reactor: its readers (no listening port here) and stop()."""

    def __init__(self) -> None:
        self.stopped = 0
        self.stopping = asyncio.Event()
        self.when_running = []

    def callWhenRunning(self, function, *args) -> None:
        self.when_running.append((function, args))

    def getReaders(self) -> list:
        return []

    def stop(self) -> None:
        self.stopped += 1
        self.stopping.set()


@pytest.fixture
def sigterm():
    """Restores the process's SIGTERM handler after the test replaced it."""
    saved = signal.getsignal(signal.SIGTERM)
    yield
    signal.signal(signal.SIGTERM, saved)


class Previous:
    """The server's own SIGTERM handler (Twisted's stops the reactor): records its calls."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.called = asyncio.Event()

    def __call__(self, signum, frame) -> None:
        self.calls.append(signum)
        self.called.set()


def test_without_a_twisted_reactor_nothing_is_installed(monkeypatch, sigterm):
    monkeypatch.delitem(sys.modules, "twisted.internet.reactor", raising=False)
    before = signal.getsignal(signal.SIGTERM)

    drain.install(10)

    assert signal.getsignal(signal.SIGTERM) is before


def test_under_daphne_the_handler_is_taken_once_the_reactor_runs(monkeypatch, sigterm):
    reactor = FakeReactor()
    monkeypatch.setitem(sys.modules, "twisted.internet.reactor", reactor)

    drain.install(7.5)

    assert reactor.when_running == [(drain.take_sigterm, (reactor, 7.5))]


async def test_sigterm_drains_then_calls_the_servers_own_handler(sigterm):
    previous, process = Previous(), Drain()
    signal.signal(signal.SIGTERM, previous)
    ticket = process.enter()
    drain.take_sigterm(FakeReactor(), TIMEOUT, process)

    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)

    assert await next_event(ticket) == RESTART
    assert previous.calls == []  # the connection is still there: the server keeps running
    process.leave(ticket)
    await asyncio.wait_for(previous.called.wait(), TIMEOUT)
    assert previous.calls == [signal.SIGTERM]


async def test_a_second_sigterm_stops_at_once(sigterm):
    previous, process = Previous(), Drain()
    signal.signal(signal.SIGTERM, previous)
    ticket = process.enter()
    drain.take_sigterm(FakeReactor(), 3600, process)
    handler = signal.getsignal(signal.SIGTERM)

    handler(signal.SIGTERM, None)
    await next_event(ticket)
    handler(signal.SIGTERM, None)

    await asyncio.wait_for(previous.called.wait(), TIMEOUT)
    assert previous.calls == [signal.SIGTERM]
    assert len(process) == 1  # the stuck connection is the server's to cancel


async def test_without_a_python_handler_before_it_the_reactor_is_stopped(sigterm):
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    reactor = FakeReactor()
    drain.take_sigterm(reactor, TIMEOUT, Drain())

    signal.getsignal(signal.SIGTERM)(signal.SIGTERM, None)

    await asyncio.wait_for(reactor.stopping.wait(), TIMEOUT)
    assert reactor.stopped == 1


# --- daphne's close with 1012 ---------------------------------------------------------------------


class FakeProtocol:
    """The autobahn methods daphne's serverClose reaches."""

    def __init__(self) -> None:
        self.frames: list[tuple] = []

    def sendClose(self, code=None, reason=None):  # autobahn's check, as in autobahn
        if code is not None and code != 1000 and not 3000 <= code <= 4999:
            raise ValueError(f"invalid close code {code}")
        self.frames.append(("close", code))

    def sendCloseFrame(self, code=None, reasonUtf8=None, isReply=False):
        self.frames.append(("frame", code, isReply))


@pytest.mark.parametrize(("code", "written"), [(1012, ("frame", 1012, False)), (4001, ("close", 4001))])
def test_daphne_closes_with_1012_itself_and_with_every_other_code_as_before(code, written):
    from daphne.ws_protocol import WebSocketProtocol

    drain.let_daphne_close_with_1012()
    drain.let_daphne_close_with_1012()  # once only, however often the application loads
    protocol_ = FakeProtocol()

    WebSocketProtocol.serverClose(protocol_, code=code)

    assert protocol_.frames == [written]


# --- HTTP requests ----------------------------------------------------------------------------------


async def test_the_drain_waits_for_an_http_request_in_progress(monkeypatch):
    process = Drain()
    monkeypatch.setattr(drain, "process", process)
    answer, started = asyncio.Event(), asyncio.Event()

    async def view(scope, receive, send) -> str:
        started.set()
        await answer.wait()
        return "answered"

    request = asyncio.create_task(drain.counted(view)({"type": "http"}, None, None))
    await asyncio.wait_for(started.wait(), TIMEOUT)
    draining = asyncio.create_task(process.run(3600, lambda: None))
    await asyncio.sleep(0)
    assert not draining.done()

    answer.set()

    assert await asyncio.wait_for(request, TIMEOUT) == "answered"
    assert await asyncio.wait_for(draining, TIMEOUT) == 0


async def test_a_connection_is_told_through_its_callback_without_a_task_of_its_own():
    process = Drain()
    told = []
    process.enter(lambda: told.append("restart"))

    await process.run(0.01, lambda: None)

    assert told == ["restart"]
