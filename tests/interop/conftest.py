"""The interop virtualenv (.venv-interop) and one local exchange per client library.

The Binance client libraries live in their own virtualenv, built here from requirements.txt on the
first run and reused while that file (and the Python version) stay the same: ccxt pins exact
versions of cffi, idna and others that would move the project's own environment.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.marketdata.exchange import ROOT, exchange_process

VENV = ROOT / ".venv-interop"
REQUIREMENTS = Path(__file__).with_name("requirements.txt")
CLIENTS = Path(__file__).with_name("clients")
SCRIPTS = {
    "binance-connector": "run_connector.py",
    "binance-sdk-spot": "run_sdk_spot.py",
    "python-binance": "run_python_binance.py",
    "ccxt": "run_ccxt.py",
}
BUILD_TIMEOUT = 900  # a first build downloads the libraries
RUN_TIMEOUT = 150  # one client script, on a loaded machine


def interop_python() -> Path:
    """The interop virtualenv's python, (re)built when the pins or the Python version changed."""
    stamp = hashlib.sha256(REQUIREMENTS.read_bytes() + sys.version.encode()).hexdigest()
    marker = VENV / "requirements.sha256"
    python = VENV / "bin" / "python"
    with open(ROOT / ".venv-interop.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two test runs side by side build it once
        if not (marker.exists() and marker.read_text() == stamp and python.exists()):
            _build(python, marker, stamp)
    return python


def _build(python: Path, marker: Path, stamp: str) -> None:
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True, timeout=BUILD_TIMEOUT)
    pip = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True, timeout=BUILD_TIMEOUT)
    marker.write_text(stamp)


@dataclass
class Run:
    library: str
    returncode: int | None
    output: str

    @property
    def facts(self) -> dict:
        lines = [line for line in self.output.splitlines() if line.startswith("INTEROP-OK ")]
        return json.loads(lines[-1].removeprefix("INTEROP-OK ")) if lines else {}


@pytest.fixture(scope="session")
def interop_runs() -> dict[str, Run]:
    """Every client script against its own local exchange, all at once (they mostly wait)."""
    python = interop_python()
    with contextlib.ExitStack() as stack:
        processes = {}
        for library, script in SCRIPTS.items():
            exchange = stack.enter_context(exchange_process("--symbols", "BTCUSDT,ETHUSDT", timeout=RUN_TIMEOUT))
            command = [str(python), str(CLIENTS / script), exchange.rest_url, exchange.ws_url]
            processes[library] = subprocess.Popen(
                command, cwd=CLIENTS, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
            )
        runs = {}
        for library, process in processes.items():
            try:
                output, _ = process.communicate(timeout=RUN_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                output = process.communicate()[0] + f"\n[killed after {RUN_TIMEOUT} s]"
            runs[library] = Run(library, process.returncode, output)
        return runs
