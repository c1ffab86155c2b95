"""The `ours-direct` server of bench/fanout.py: `ours` with the fan-out's frames sent at once.

A prototype measured against `ours`, not the project's code. `realtime.flow.raw_writer` hands each
pre-built frame to Twisted's `transport.write`, which only buffers it and registers the socket for
writing (`startWriting` -> asyncio `add_writer` -> `selectors.modify`: an `epoll_ctl` and a
namedtuple copy); the reactor's write callback later does the `send` and unregisters the socket
again (`stopWriting`). That pair is a large share of the per-message profile at 1,000 clients
(docs/BENCHMARKS.md). Here, when nothing is waiting in the transport's buffer, the frame is sent on
the socket directly (as asyncio's own transports do) and only what the kernel did not take goes
through `transport.write`; with anything already buffered, everything goes through Twisted, in order.

    daphne bench.ours_direct_asgi:application   (DJANGO_SETTINGS_MODULE=tradingsite.settings)
"""

from tradingsite import asgi  # first: it sets Django up

application = asgi.application  # the project's application, unchanged

from realtime import flow  # noqa: E402

_buffered_writer = flow.raw_writer


def direct_writer(send):
    write = _buffered_writer(send)
    protocol = flow.server_protocol(send)
    transport = getattr(protocol, "transport", None)
    sock = getattr(transport, "socket", None)
    if write is None or sock is None or getattr(transport, "TLS", False) or not hasattr(transport, "_tempDataLen"):
        return write
    open_state = protocol.STATE_OPEN

    def direct(frame: bytes) -> bool:
        if protocol.state != open_state:
            return False
        if transport._tempDataLen or len(transport.dataBuffer) != transport.offset or not transport.connected:
            transport.write(frame)  # something is waiting: stay behind it
            return True
        try:
            sent = sock.send(frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            transport.write(frame)  # let Twisted meet the error and close the connection its way
            return True
        if sent < len(frame):
            transport.write(frame[sent:])
        return True

    return direct


flow.raw_writer = direct_writer  # realtime.consumers calls flow.raw_writer(...) per connection
