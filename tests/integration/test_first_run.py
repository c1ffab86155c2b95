"""What a newcomer meets first: a busy port, a mistyped WebSocket path and the log of a normal start."""

from __future__ import annotations

import os
import socket
import subprocess
import urllib.request

import pytest
import websockets

from tests.integration import harness
from tests.support import TIMEOUT

pytestmark = pytest.mark.slow

# Words that mean a start was not clean (Python warnings, Django's 404/500 lines, tracebacks).
NOT_CLEAN = ("Warning", "WARNING", "Not Found", "Traceback", "ERROR", "No route found")


@pytest.fixture
def busy_port():
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def run(args: list[str], stack, **env) -> subprocess.CompletedProcess:
    return subprocess.run(
        args, cwd=harness.ROOT, env=stack.env(**env), capture_output=True, text=True, timeout=120, check=False
    )


def test_serve_on_a_busy_port_says_so_and_fails(stack, busy_port):
    result = run([harness.PYTHON, "manage.py", "serve", "--port", str(busy_port)], stack)

    assert result.returncode == 1, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port}" in result.stderr
    assert "PORT=" in result.stderr  # and how to choose another port
    assert "Trading gateway on" not in result.stdout  # no URL that does not work


@pytest.mark.parametrize("target", ["run", "serve"])
def test_make_on_a_busy_port_fails_with_the_reason(stack, busy_port, target):
    # `-o .venv/.installed`: a test never reinstalls the virtualenv it runs from.
    # DJANGO_DEBUG unset, as in a newcomer's shell: make run defaults it on for its demo users.
    result = run(
        ["make", "-o", ".venv/.installed", target], stack, PORT=str(busy_port), PATH=os.environ["PATH"], DJANGO_DEBUG=""
    )

    assert result.returncode != 0, result.stdout + result.stderr
    assert f"cannot listen on 127.0.0.1:{busy_port}" in result.stderr


@pytest.mark.parametrize("path", ["/ws/nope", "/market", "/ws/market/extra"])
async def test_an_unknown_websocket_path_is_refused_with_an_error_frame_and_4404(gateway, path):
    async with websockets.connect(f"{gateway.ws}{path}", open_timeout=TIMEOUT) as ws:
        frame = await ws.recv()
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()

    assert '"code": 4404' in frame and path in frame and "/ws/market" in frame
    assert closed.value.rcvd.code == 4404
    log = gateway.service.log()
    assert "No route found" not in log and "Traceback" not in log, log[-3000:]


def test_a_normal_start_logs_no_warning(stack, tmp_path):
    """Daphne as deployed (DEBUG off) and `manage.py serve` as `make run` starts it (DEBUG on, embedded)."""
    port = harness.free_port()
    embedded = stack.spawn(
        "serve-clean",
        [harness.PYTHON, "manage.py", "serve", "--port", str(port)],
        DJANGO_DEBUG="1",
        REDIS_URL="",
        MARKET_SOURCE="simulator",
    )
    served = [harness.Gateway(embedded, port), stack.daphne()]
    for gateway in served:
        gateway.wait_ready(timeout=60)
        for path in ("/", "/admin/login/", "/favicon.ico", "/static/css/app.css", "/ws/status"):
            with urllib.request.urlopen(f"{gateway.http}{path}", timeout=TIMEOUT) as response:
                assert response.status == 200, path  # /favicon.ico: redirected to the page's icon
        assert gateway.status()["market_data"] is not None
    harness.wait_until(lambda: "open with" in embedded.log(), embedded, "the embedded worker never connected", 60)

    for gateway in served:
        gateway.service.stop()
        log = gateway.service.log()
        assert not [line for line in log.splitlines() if any(word in line for word in NOT_CLEAN)], log
