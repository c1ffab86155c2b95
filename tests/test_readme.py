"""Every shell command in README.md runs as written, top to bottom, as a newcomer would run them.

Blocks fenced ```server are for a production host from nothing (Security, Deploying: apt-get, systemd,
Docker, PostgreSQL): they are not run here; tests/deploy and the integration tests check those files
and steps. The commands of every ```bash block run in one shell session from the checkout's root, on a fresh
SQLite database, with the test environment's ports and hosts put in for the README's (8000, 8001,
8002, 9443, trading.example.com, Redis database 0) and Binance's URLs pointed at a local exchange
simulator this test starts. PATH does not contain the virtualenv: a bare `python` or `daphne` fails
here as it does in a new terminal. Exports carry on to later commands, as in a shell.

- A server, worker or simulator (`make run`, `daphne ...`, `manage.py runstream`, anything ending in
  `&`) is started and must come up (answer HTTP, accept connections, or connect to the exchange) and
  stay up; one run in the foreground is then stopped with Ctrl-C before the next command, as a
  person would, except `make run`, which the rest of the README talks to. Background ones stop at
  the end of their block.
- Every other line runs in bash with `set -e -o pipefail`, a block's lines in one script (so its
  variables carry on), and `curl` fails on an HTTP error status (`--fail-with-body`): a non-zero exit
  or a 4xx/5xx answer fails the test.
- `make` never reinstalls the virtualenv the tests run from (`-o .venv/.installed`), and `make test`
  runs one small test file (PYTEST_ARGS), not this suite inside itself.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.integration import harness

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
REDIS_DBS = (13, 15, 12, 14)  # shared with the CLI and browser tests, each claimed with a lock
READY_TIMEOUT = 120.0  # `make run` migrates and seeds first
SCRIPT_TIMEOUT = 300.0  # `make test` runs pytest

_FENCE = re.compile(r"^```(\w*)\s*$")
_SHELLS = {"bash", "sh", "shell", "console"}
_LONG_RUNNING = re.compile(
    r"(?:^|\s|/)(?:make(?:\s+-\S+)*\s+(?:run|serve|worker|simulator)\b"
    r"|daphne\s"
    r"|manage\.py\s+(?:runstream|serve|simulate_exchange)\b)"
)


# --- reading the README (pure) ---------------------------------------------------------------------


def shell_blocks(text: str) -> list[list[str]]:
    """The commands of each shell code block: continuation lines joined, comment-only lines dropped."""
    blocks: list[list[str]] = []
    lines: list[str] | None = None
    for line in text.splitlines():
        fence = _FENCE.match(line.strip())
        if fence and lines is None:
            lines = [] if fence.group(1) in _SHELLS else None
            if lines is None:
                lines = ["<not shell>"]
            continue
        if fence and lines is not None:
            if lines != ["<not shell>"]:
                blocks.append(join_commands(lines))
            lines = None
            continue
        if lines is not None and lines != ["<not shell>"]:
            lines.append(line)
    return [block for block in blocks if block]


def join_commands(lines: list[str]) -> list[str]:
    commands, pending = [], ""
    for line in lines:
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1].rstrip() + " "
            continue
        commands.append((pending + line.strip()).strip())
        pending = ""
    if pending:
        commands.append(pending.strip())
    return commands


def without_comment(command: str) -> str:
    """The command without a trailing `# ...` comment (outside quotes; good enough for this README)."""
    quote = None
    for index, char in enumerate(command):
        if quote:
            quote = None if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or command[index - 1].isspace()):
            return command[:index].rstrip()
    return command


def is_long_running(command: str) -> bool:
    code = without_comment(command)
    return code.endswith("&") or bool(_LONG_RUNNING.search(code))


def localise(command: str, ports: dict[str, int], redis_db: int) -> str:
    """The README's hosts and ports replaced by the test environment's."""
    command = command.replace("https://trading.example.com", f"http://127.0.0.1:{ports['8000']}")
    command = command.replace("redis://127.0.0.1:6379/0", f"redis://127.0.0.1:6379/{redis_db}")
    for readme_port, port in ports.items():
        command = re.sub(rf"\b{readme_port}\b", str(port), command)
    return re.sub(r"(^|[\s;&|(])make(?=\s)", r"\1make -o .venv/.installed", command)


def test_the_readme_parser_finds_commands_joins_continuations_and_classifies_servers():
    text = "```bash\nmake run    # serve\n# a comment\nA=1 \\\n   b --x\nsleep 1 &\n```\n```json\n{}\n```\n"

    assert shell_blocks(text) == [["make run    # serve", "A=1 b --x", "sleep 1 &"]]
    assert [is_long_running(c) for c in shell_blocks(text)[0]] == [True, False, True]
    assert is_long_running(".venv/bin/daphne -b 127.0.0.1 -p 8001 tradingsite.asgi:application")
    assert not is_long_running("make test   # runs make run's tests")
    assert not is_long_running("curl -s localhost:8000/api/bots/1/start/   # not a daphne")
    ports = {"8000": 5000, "9443": 6000}
    assert localise("curl 127.0.0.1:8000/x # 18000", ports, 13) == "curl 127.0.0.1:5000/x # 18000"
    assert localise("make run", ports, 13) == "make -o .venv/.installed run"
    assert len(shell_blocks(README.read_text())) >= 5


# --- running them ----------------------------------------------------------------------------------


@dataclass
class Process:
    command: str
    popen: subprocess.Popen
    log: Path
    keep: bool  # `make run`: the rest of the README talks to it

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-6000:]

    def alive(self) -> bool:
        return self.popen.poll() is None

    def interrupt(self) -> None:
        """Ctrl-C, as a person would, then SIGKILL if it does not stop."""
        if self.alive():
            os.killpg(self.popen.pid, signal.SIGINT)
            try:
                self.popen.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(10)


@dataclass
class Session:
    env: dict[str, str]
    workdir: Path
    ports: dict[str, int]
    redis_db: int
    processes: list[Process] = field(default_factory=list)
    transcript: list[str] = field(default_factory=list)

    def run_block(self, commands: list[str]) -> None:
        script: list[str] = []
        started: list[Process] = []
        for raw in commands:
            command = localise(raw, self.ports, self.redis_db)
            if command.startswith("export "):
                self.flush(script)
                self.export(command)
            elif is_long_running(raw):
                self.flush(script)
                process = self.start(command)
                if without_comment(command).endswith("&") or process.keep:
                    started.append(process)
                else:
                    self.assert_alive(process)
                    process.interrupt()  # a foreground server: Ctrl-C before the next command
            else:
                script.append(command)
        self.flush(script)
        for process in started:
            if not process.keep:
                self.assert_alive(process)
                process.interrupt()

    def flush(self, script: list[str]) -> None:
        if not script:
            return
        body = "\n".join(script)
        self.transcript.append(body)
        print(f"$ {body}", flush=True)
        prelude = 'set -e -o pipefail\ncurl() { command curl --fail-with-body "$@"; }\n'
        result = subprocess.run(
            ["bash", "-c", prelude + body],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=SCRIPT_TIMEOUT,
            check=False,
        )
        script.clear()
        assert result.returncode == 0, (
            f"README commands failed with exit status {result.returncode}:\n{body}\n"
            f"--- stdout ---\n{result.stdout[-4000:]}\n--- stderr ---\n{result.stderr[-4000:]}\n{self.logs()}"
        )

    def export(self, command: str) -> None:
        """Run an `export` line in bash and keep the environment it leaves."""
        result = subprocess.run(
            ["bash", "-c", f"set -e\n{command}\nenv -0"], cwd=ROOT, env=self.env, capture_output=True, check=False
        )
        assert result.returncode == 0, f"{command}: {result.stderr.decode(errors='replace')}"
        pairs = (item.split("=", 1) for item in result.stdout.decode().split("\0") if "=" in item)
        self.env = {key: value for key, value in pairs if not key.startswith(("BASH_FUNC", "SHLVL", "_"))}

    def start(self, command: str) -> Process:
        code = without_comment(command).removesuffix("&").strip()
        log = self.workdir / f"process-{len(self.processes)}.log"
        self.transcript.append(f"{code} &")
        print(f"$ {code} &", flush=True)
        with log.open("wb") as out:
            popen = subprocess.Popen(
                ["bash", "-c", code],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        process = Process(command, popen, log, keep=bool(re.search(r"\bmake\b.*\brun\b", code)))
        self.processes.append(process)
        self.wait_ready(process, code)
        return process

    def wait_ready(self, process: Process, code: str) -> None:
        """A server answers /ws/status, a simulator accepts connections, a worker reaches the exchange."""
        port = re.search(r"(?:-p|--port|PORT=)\s*(\d+)", code)
        if "simulate_exchange" in code or "make -o .venv/.installed simulator" in code:
            ready = lambda: port_open(int(port.group(1)))  # noqa: E731
        elif "runstream" in code or " worker" in code:
            ready = lambda: "exchange connection 1 open" in process.output()  # noqa: E731
        else:
            url = f"http://127.0.0.1:{port.group(1) if port else self.env['PORT']}/ws/status"
            ready = lambda: http_ok(url)  # noqa: E731
        deadline = time.monotonic() + READY_TIMEOUT
        while not ready():
            assert process.alive(), f"`{code}` exited with {process.popen.returncode}:\n{process.output()}"
            assert time.monotonic() < deadline, f"`{code}` did not come up:\n{process.output()}"
            time.sleep(0.2)

    def assert_alive(self, process: Process) -> None:
        assert process.alive(), f"`{process.command}` stopped by itself:\n{process.output()}"

    def stop_all(self) -> None:
        for process in reversed(self.processes):
            process.interrupt()

    def logs(self) -> str:
        return "\n".join(f"--- {p.command} ---\n{p.output()}" for p in self.processes)


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status == 200
    except (OSError, urllib.error.URLError):
        return False


def clean_environment(workdir: Path, exchange_port: int, gateway_port: int) -> dict[str, str]:
    """A new terminal's environment: no project settings, no virtualenv on PATH."""
    venv_bins = {str(ROOT / ".venv" / "bin"), str(Path(sys.executable).parent)}
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("DJANGO_", "WS_", "BINANCE_", "MARKET_", "REDIS", "DATABASE_", "PYTEST", "VIRTUAL_ENV"))
    }
    env["PATH"] = os.pathsep.join(p for p in env.get("PATH", "").split(os.pathsep) if p not in venv_bins)
    env.update(
        DATABASE_URL=f"sqlite:///{workdir / 'db.sqlite3'}",
        BINANCE_WS_URL=f"ws://127.0.0.1:{exchange_port}",  # "Binance" is a local exchange here
        BINANCE_REST_URL=f"http://127.0.0.1:{exchange_port}",
        PORT=str(gateway_port),  # `make run` serves here instead of 8000
        PYTEST_ARGS="tests/test_config.py -q -p no:cacheprovider",  # what `make test` runs
        PYTHONUNBUFFERED="1",
    )
    return env


@pytest.fixture
def exchange(tmp_path):
    """The stand-in for Binance: a local exchange simulator on a free port."""
    port = harness.free_port()
    log = (tmp_path / "exchange.log").open("wb")
    env = {**os.environ, "DJANGO_SECRET_KEY": harness.SECRET_KEY, "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"}
    command = [harness.PYTHON, "manage.py", "simulate_exchange", "--port", str(port), "--interval", "0.2"]
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while not port_open(port):
            assert process.poll() is None and time.monotonic() < deadline, (tmp_path / "exchange.log").read_text()
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_every_shell_command_in_the_readme_runs_as_written(tmp_path, exchange):
    if not harness.redis_answers():
        pytest.fail("Redis is not answering on 127.0.0.1:6379: start it (.ci/run does)")
    redis_db, lock = harness.claim_redis_db(REDIS_DBS)
    subprocess.run(["redis-cli", "-n", str(redis_db), "FLUSHDB"], check=True, capture_output=True)
    ports = {readme: harness.free_port() for readme in ("8000", "8001", "8002", "9443")}
    session = Session(clean_environment(tmp_path, exchange, ports["8000"]), tmp_path, ports, redis_db)
    try:
        for block in shell_blocks(README.read_text()):
            session.run_block(block)
    finally:
        session.stop_all()
        lock.close()
    ran = "\n".join(session.transcript)
    for expected in ("make -o .venv/.installed run", "tools/websocket_test_client.py", "daphne", "/api/orders/"):
        assert expected in ran, f"the README no longer runs {expected!r}: {ran}"
