"""Debian's Chromium under Selenium, headless and offline: never a browser or driver download.

Selenium Manager is never consulted: the driver path is given explicitly (Selenium skips its manager
when the Service has a path) and SE_OFFLINE forbids it any network access should that ever change.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("CHROMEDRIVER_BINARY", "/usr/bin/chromedriver")

# The network is closed: without these, Chromium keeps trying Google services and floods refusals.
CHROMIUM_FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
    "--metrics-recording-only",
    "--password-store=basic",
    "--window-size=1600,1000",
)


def missing() -> str | None:
    """Why the browser tests cannot run here, or None."""
    for path in (CHROMIUM, CHROMEDRIVER):
        if not (Path(path).is_file() or shutil.which(path)):
            return f"{path} not found: apt-get install chromium chromium-driver (.ci/run does)"
    return None


def start(profile_dir: Path, log_path: Path | None = None):
    """A WebDriver for a fresh headless Chromium with its console log readable."""
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager may never download anything
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=CHROMEDRIVER, log_output=str(log_path) if log_path else os.devnull)
    driver = webdriver.Chrome(service=service, options=options)
    driver.set_page_load_timeout(30)
    # Every text frame the page's sockets receive is kept for the wire-contract check (tests/schema.py).
    driver.execute_cdp_cmd("Page.addScriptToEvaluateOnNewDocument", {"source": RECORD_FRAMES})
    return driver


RECORD_FRAMES = """
window.__frames = [];
const NativeWebSocket = window.WebSocket;
window.WebSocket = class extends NativeWebSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener("message", (event) => {
      if (typeof event.data === "string" && window.__frames.length < 5000) window.__frames.push(event.data);
    });
  }
};
"""


def received_frames(driver) -> list[str]:
    """The text frames the current page's sockets received (since it loaded), then forgotten."""
    return driver.execute_script("const f = window.__frames || []; window.__frames = []; return f;") or []


def console_entries(driver) -> list[dict]:
    """The browser console since the last call (each entry: level, message, timestamp)."""
    return driver.get_log("browser")


def save_full_page(driver, path: Path) -> Path:
    """A PNG of the whole page, below the fold too (Chrome DevTools' captureBeyondViewport)."""
    import base64

    width, height = driver.execute_script(
        "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];"
    )
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot",
        {
            "format": "png",
            "captureBeyondViewport": True,
            "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1},
        },
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(shot["data"]))
    return path
