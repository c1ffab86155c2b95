"""`manage.py serve --processes 2`: two daphne processes on one port, joined by Redis.

Which process holds a client's connection is read from the operating system: the server side of
each connection is a socket in exactly one daphne child's descriptor table (/proc/<pid>/fd against
/proc/net/tcp), so the test needs no hook in the server.
"""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from pathlib import Path

import pytest

from tests import messages
from tests.integration import harness
from tests.integration.harness import Client, Gateway
from tests.support import TIMEOUT

PIDS = re.compile(r"with 2 daphne processes \(pids (\d+), (\d+)\)")
LISTEN, ESTABLISHED = "0A", "01"
MAX_CLIENTS = 40  # SO_REUSEPORT hashes connections over the two sockets: all 40 on one is a 2**-39 chance


def tcp_sockets(port: int) -> dict[int, tuple[str, int]]:
    """inode -> (state, remote port) of the IPv4 sockets whose local port is `port`."""
    found = {}
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote, state, inode = fields[1], fields[2], fields[3], int(fields[9])
        if int(local.split(":")[1], 16) == port:
            found[inode] = (state, int(remote.split(":")[1], 16))
    return found


def socket_inodes(pid: int) -> set[int]:
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(int(target[8:-1]))
    return inodes


def sockets_of(pid: int, port: int, state: str) -> set[int]:
    """Remote ports of `pid`'s sockets on local `port` in `state` (for LISTEN: the remote port 0)."""
    owned = socket_inodes(pid)
    return {remote for inode, (s, remote) in tcp_sockets(port).items() if inode in owned and s == state}


@pytest.fixture(scope="module")
def two_processes(stack):
    port = harness.free_port()
    service = stack.spawn(
        "serve-2", [harness.PYTHON, "manage.py", "serve", "--processes", "2", "--no-worker", "--port", str(port)]
    )
    harness.wait_until(lambda: PIDS.search(service.log()), service, "the children's pids")
    pids = [int(pid) for pid in PIDS.search(service.log()).groups()]
    harness.wait_until(
        lambda: all(sockets_of(pid, port, LISTEN) for pid in pids), service, "both children listening", TIMEOUT * 3
    )
    gateway = Gateway(service, port)
    gateway.wait_ready()
    yield gateway, pids
    service.stop()


async def test_two_processes_share_the_port_and_each_serves_clients(two_processes, redis_publish):
    gateway, pids = two_processes
    clients: list[Client] = []
    served: dict[int, list[Client]] = {pid: [] for pid in pids}
    try:
        while len(clients) < MAX_CLIENTS and not all(served.values()):
            client = await Client.connect(f"{gateway.ws}/ws/market")
            clients.append(client)
            await client.subscribe({"type": "subscribe_ticker", "symbols": ["ADAUSDT"]})
            client_port = client.ws.local_address[1]
            owners = [pid for pid in pids if client_port in sockets_of(pid, gateway.port, ESTABLISHED)]
            assert len(owners) == 1, f"connection from port {client_port} held by {owners}"
            served[owners[0]].append(client)
        assert all(served.values()), f"every one of {len(clients)} connections went to one process"

        # One update published once through Redis reaches the clients of both processes.
        sent = messages.ticker("ADAUSDT", "0.38420000")
        frame = await redis_publish.apublish_market(sent)
        got = await asyncio.gather(*(c.recv_until(lambda m: m.get("seq") == frame.seq) for c in clients))
        assert all(m == {**sent, "seq": frame.seq} for m in got)

        # The registry is shared: /ws/status (answered by either process) counts every connection.
        await asyncio.to_thread(
            harness.wait_until,
            lambda: gateway.status()["connections_by_endpoint"].get("market", 0) >= len(clients),
            gateway.service,
            "the shared registry counting both processes' connections",
        )
    finally:
        await asyncio.gather(*(c.close() for c in clients), return_exceptions=True)


def test_sigterm_stops_the_parent_and_both_children(stack, two_processes):
    gateway, pids = two_processes
    assert gateway.service.stop(signal.SIGTERM) == 0
    for pid in pids:
        assert not Path(f"/proc/{pid}").exists() or "zombie" in Path(f"/proc/{pid}/status").read_text().lower()


def test_more_than_one_process_without_redis_is_refused_saying_why(stack):
    env = stack.env()
    env.pop("REDIS_URL")
    done = subprocess.run(
        [harness.PYTHON, "manage.py", "serve", "--processes", "2", "--port", "0"],
        cwd=harness.ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 3,
    )
    assert done.returncode != 0
    assert "--processes 2 needs REDIS_URL" in done.stderr
