"""realtime.flow: the probe that reads how many bytes daphne's Twisted transport still has to write."""

from __future__ import annotations

import functools
import logging

from twisted.internet.abstract import FileDescriptor

from realtime import flow


class NoReactor:
    """Enough of a reactor for a transport that is written to but never run."""

    def addWriter(self, writer) -> None:
        pass

    def removeWriter(self, writer) -> None:
        pass


class SlowSocket(FileDescriptor):
    """A real Twisted transport whose socket takes at most `per_write` bytes at a time."""

    def __init__(self, per_write: int) -> None:
        super().__init__(reactor=NoReactor())
        self.connected = 1
        self.per_write = per_write

    def writeSomeData(self, data) -> int:
        return min(self.per_write, len(data))


def daphne_send(transport) -> functools.partial:
    """What daphne passes a consumer as its ASGI send: `partial(server.handle_reply, protocol)`."""

    def handle_reply(protocol, message) -> None:
        pass

    protocol = type("WebSocketProtocol", (), {})()
    protocol.transport = transport
    return functools.partial(handle_reply, protocol)


def test_the_backlog_counts_what_was_written_to_the_transport_and_not_yet_to_the_socket():
    socket = SlowSocket(per_write=30)
    backlog = flow.backlog_probe(daphne_send(socket))
    assert backlog() == 0

    socket.write(b"x" * 100)
    assert backlog() == 100

    socket.doWrite()  # the socket took 30 bytes
    assert backlog() == 70

    socket.write(b"y" * 10)
    assert backlog() == 80


def test_the_backlog_of_a_transport_that_wrote_everything_is_zero():
    socket = SlowSocket(per_write=1000)
    backlog = flow.backlog_probe(daphne_send(socket))
    socket.write(b"x" * 100)

    socket.doWrite()

    assert backlog() == 0


def test_the_backlog_of_a_transport_that_lost_its_buffers_is_zero():
    class Gone:
        _tempDataLen = 0  # looks like Twisted's, but `dataBuffer` and `offset` are gone

    assert flow.backlog_probe(daphne_send(Gone()))() == 0


def test_a_server_whose_buffer_cannot_be_seen_gives_zero_and_says_so(caplog):
    async def send(message) -> None:
        pass

    with caplog.at_level(logging.WARNING, logger=flow.__name__):
        backlog = flow.backlog_probe(send)

    assert backlog() == 0
    assert "cannot see the server's send buffer" in caplog.text


def test_a_transport_without_twisteds_buffer_gives_zero():
    backlog = flow.backlog_probe(daphne_send(object()))

    assert backlog() == 0


def test_the_watermarks_leave_room_to_drain_before_queueing_again():
    assert 0 < flow.LOW_WATER < flow.HIGH_WATER
