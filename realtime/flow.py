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


def backlog_probe(send: Callable) -> Callable[[], int]:
    """A function returning the transport's buffered byte count, or always 0 if unknowable."""
    # Daphne passes `functools.partial(server.handle_reply, protocol)` as the ASGI send callable.
    protocol = next(iter(getattr(send, "args", ())), None)
    transport = getattr(protocol, "transport", None)
    if transport is None or not hasattr(transport, "_tempDataLen"):
        logger.warning("cannot see the server's send buffer; slow clients are bounded by the outbox only")
        return _zero

    def backlog() -> int:
        try:
            return len(transport.dataBuffer) - transport.offset + transport._tempDataLen
        except AttributeError:  # the connection is gone
            return 0

    return backlog


def _zero() -> int:
    return 0
