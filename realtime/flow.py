"""How many bytes the server has accepted for a client but not yet written to its socket.

Daphne takes every `websocket.send` at once and appends it to the Twisted transport's buffer
without telling the application, so a queue in the consumer alone bounds nothing: a client that
stops reading would make that buffer grow without limit. The consumer asks this probe before each
send and, past a high-water mark, keeps messages in its own bounded outbox instead.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)

# Past this many buffered bytes a client counts as not keeping up; below LOW it is drained again.
HIGH_WATER = 256 * 1024
LOW_WATER = 64 * 1024


def server_protocol(send: Callable):
    """Daphne's WebSocket protocol object behind an ASGI send callable, or None (another server)."""
    # Daphne passes `functools.partial(server.handle_reply, protocol)` as the ASGI send callable.
    return next(iter(getattr(send, "args", ())), None)


def raw_writer(send: Callable) -> Callable[[bytes], bool] | None:
    """A function writing an already-framed WebSocket frame straight to the socket (True when it
    did; False when the connection is not open any more), or None when that cannot be done safely:
    another server than daphne, or a connection that negotiated compression (frames differ)."""
    protocol = server_protocol(send)
    transport = getattr(protocol, "transport", None)
    if transport is None or getattr(protocol, "_perMessageCompress", True) is not None:
        return None
    return _RawWriter(protocol, transport).write


class _RawWriter:
    # Every connection holds one: a bound method of a slotted object is a third of a closure's size.
    __slots__ = ("direct", "open_state", "protocol", "sock", "transport")

    def __init__(self, protocol, transport) -> None:
        self.protocol, self.transport = protocol, transport
        self.open_state = protocol.STATE_OPEN
        self.sock = sock = getattr(transport, "socket", None)
        self.direct = sock is not None and not getattr(transport, "TLS", False) and hasattr(transport, "_tempDataLen")

    def write(self, frame: bytes) -> bool:
        transport = self.transport
        if self.protocol.state != self.open_state:
            return False
        if (
            not self.direct
            or not transport.connected
            or transport._tempDataLen
            or len(transport.dataBuffer) != transport.offset
        ):
            transport.write(frame)  # something is waiting in Twisted's buffer: stay behind it, in order
            return True
        # Nothing waiting: send now, as asyncio's own transports do. Twisted's write would only buffer
        # the frame and register the socket for writing, then unregister it after the send: that
        # pair was the largest share of the per-message profile (docs/BENCHMARKS.md).
        try:
            sent = self.sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            transport.write(frame)  # let Twisted meet the error and close the connection its way
            return True
        if sent < len(frame):
            transport.write(frame[sent:])
        return True


def backlog_probe(send: Callable) -> Callable[[], int]:
    """A function returning the transport's buffered byte count, or always 0 if unknowable."""
    protocol = server_protocol(send)
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(transport, "_tempDataLen"):
        logger.warning("cannot see the server's send buffer; slow clients are bounded by the outbox only")
        return _zero
    return _Backlog(transport).count


class _Backlog:
    __slots__ = ("transport",)  # one per connection, as `_RawWriter`

    def __init__(self, transport) -> None:
        self.transport = transport

    def count(self) -> int:
        transport = self.transport
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except AttributeError:  # the connection is gone
            return 0


def _zero() -> int:
    return 0
