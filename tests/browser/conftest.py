"""The live system and a headless Debian Chromium for the browser tests."""

from __future__ import annotations

import json

import pytest

from tests.browser import chromium
from tests.integration.harness import ROOT
from tests.schema import check_frame
from tests.tools import live

# Databases of its own, not the integration tests' (8, 9) or the benchmark's (11); the first one no
# other test run on this machine holds is used.
REDIS_DBS = (14, 12)
ARTIFACTS = ROOT / "test-artifacts"


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/browser" in str(item.fspath):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="module")
def browser_system(tmp_path_factory):
    """Exchange, worker and daphne with short client timings, so a restart is seen in seconds.

    Module-scoped: Redis pub/sub channels (the market layer) are shared by every database number,
    so a worker left running would feed its prices into the next stack's gateways.
    """
    try:
        system = live.start(
            tmp_path_factory.mktemp("live-browser"),
            REDIS_DBS,
            WS_RECONNECT_TIMEOUT="3",  # the page's backoff cap
            WS_HEARTBEAT_INTERVAL="5",
        )
    except RuntimeError as exc:
        pytest.fail(str(exc))
    yield system
    system.stop()


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    why = chromium.missing()
    if why:
        pytest.fail(why)
    workdir = tmp_path_factory.mktemp("chromium")
    web = chromium.start(workdir / "profile", workdir / "chromedriver.log")
    yield web
    web.quit()


@pytest.fixture(autouse=True)
def frames_on_the_contract(request):
    """Every frame the page received during the test passes the wire-contract check."""
    yield
    web = request.node.funcargs.get("driver") if hasattr(request.node, "funcargs") else None
    if web is None:
        return
    try:
        frames = chromium.received_frames(web)
    except Exception:  # the page is gone (a test that quit or navigated away): nothing to check
        return
    for text in frames:
        check_frame(json.loads(text))


@pytest.fixture(autouse=True)
def screenshot_on_failure(request):
    yield
    report = getattr(request.node, "rep_call", None)
    web = request.node.funcargs.get("driver") if hasattr(request.node, "funcargs") else None
    if report is not None and report.failed and web is not None:
        ARTIFACTS.mkdir(exist_ok=True)
        web.save_screenshot(str(ARTIFACTS / f"failed-{request.node.name}.png"))
        system = request.node.funcargs.get("browser_system")
        if system is not None:
            print(system.stack.logs())


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)
