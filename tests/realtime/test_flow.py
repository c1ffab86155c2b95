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


# --- writing a pre-built frame straight to the socket ----------------------------------------------------


def daphne_protocol(transport, *, state: str = "open", compression=None):
    """Daphne's own WebSocket protocol object (autobahn's), in the state the handshake left it."""
    from daphne.ws_protocol import WebSocketProtocol

    protocol = WebSocketProtocol()
    protocol.transport = transport
    protocol.state = {"open": protocol.STATE_OPEN, "closing": protocol.STATE_CLOSING}[state]
    protocol._perMessageCompress = compression  # None: the client negotiated no permessage-deflate
    return protocol


def sent_through(protocol) -> functools.partial:
    def handle_reply(protocol, message) -> None:
        pass

    return functools.partial(handle_reply, protocol)


def test_an_open_uncompressed_connection_writes_the_frame_to_its_transport():
    socket = SlowSocket(per_write=1000)
    write = flow.raw_writer(sent_through(daphne_protocol(socket)))
    backlog = flow.backlog_probe(sent_through(daphne_protocol(socket)))

    assert write(b"\x81\x02hi") is True

    assert backlog() == 4  # in Twisted's buffer, as daphne's own writes are
    socket.per_write = 1
    socket.doWrite()
    assert backlog() == 3


def test_a_connection_that_is_closing_refuses_the_frame_and_writes_nothing():
    socket = SlowSocket(per_write=1000)
    protocol = daphne_protocol(socket)
    write = flow.raw_writer(sent_through(protocol))

    protocol.state = protocol.STATE_CLOSING  # the writer was made while open; the state is read per write

    assert write(b"\x81\x02hi") is False
    assert flow.backlog_probe(sent_through(protocol))() == 0


def test_a_closed_connection_refuses_the_frame():
    protocol = daphne_protocol(SlowSocket(per_write=1000))
    write = flow.raw_writer(sent_through(protocol))
    protocol.state = protocol.STATE_CLOSED

    assert write(b"\x81\x02hi") is False


def test_a_connection_that_negotiated_compression_gets_no_raw_writer():
    compressed = daphne_protocol(SlowSocket(per_write=1000), compression=object())  # frames would differ

    assert flow.raw_writer(sent_through(compressed)) is None


def test_a_connection_before_its_handshake_gets_no_raw_writer():
    from daphne.ws_protocol import WebSocketProtocol

    protocol = WebSocketProtocol()  # no compression decided yet
    protocol.transport = SlowSocket(per_write=1000)

    assert flow.raw_writer(sent_through(protocol)) is None


def test_another_server_or_a_protocol_without_a_transport_gets_no_raw_writer():
    async def send(message) -> None:
        pass

    assert flow.raw_writer(send) is None
    assert flow.raw_writer(sent_through(type("Bare", (), {"_perMessageCompress": None})())) is None


def test_the_server_protocol_is_the_first_argument_of_daphnes_send():
    protocol = daphne_protocol(SlowSocket(per_write=1000))

    assert flow.server_protocol(sent_through(protocol)) is protocol
    assert flow.server_protocol(print) is None
