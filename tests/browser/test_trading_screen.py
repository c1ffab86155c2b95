"""The demo trading screen in Debian's Chromium against real daphne, worker and local exchange.

The tests run in order on one page, as a person would use it: look at the market, sign in, trade,
start a bot, then live through a server restart. Each test that needs a signed-in page signs in if
it is not, so any one of them can also run alone.
"""

from __future__ import annotations

import time
from decimal import Decimal

import pytest
from selenium.common.exceptions import JavascriptException, StaleElementReferenceException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from tests.browser import chromium
from tests.browser.conftest import ARTIFACTS
from tests.tools.live import DEMO_USER, wait_for_ticker

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 20.0  # seconds for anything the page should show
RESTART_WAIT = 45.0  # the page notices the restart, backs off (cap 3 s) and resubscribes
SYMBOL = "BTCUSDT"

# Chromium reports a refused connection itself, at SEVERE level, while the server is down.
EXPECTED_WHILE_DOWN = ("ERR_CONNECTION_REFUSED", "ERR_CONNECTION_RESET", "WebSocket connection to")


def wait_until(driver, condition, message: str, timeout: float = WAIT):
    """Poll `condition(driver)` until it returns something truthy; fail with `message`."""

    def attempt(web):
        try:
            return condition(web)
        except (StaleElementReferenceException, JavascriptException):
            return False

    return WebDriverWait(driver, timeout, poll_frequency=0.2).until(attempt, message)


def js(driver, expression: str):
    return driver.execute_script(f"return {expression};")


def severe_console_errors(driver, allowed: tuple[str, ...] = ()) -> list[str]:
    return [
        entry["message"]
        for entry in chromium.console_entries(driver)
        if entry["level"] == "SEVERE" and not any(text in entry["message"] for text in allowed)
    ]


def ticker_stamp(driver, symbol: str = SYMBOL) -> str | None:
    return js(driver, f"document.querySelector('#watchlist tr[data-symbol=\"{symbol}\"]')?.dataset.updated")


def wait_for_ticker_update(driver, symbol: str = SYMBOL, timeout: float = WAIT) -> None:
    """A ticker newer than the one shown now arrives and is shown."""
    before = ticker_stamp(driver, symbol)
    wait_until(
        driver, lambda d: ticker_stamp(d, symbol) not in (None, before), f"no new {symbol} ticker", timeout=timeout
    )


def attribute(driver, css: str, name: str) -> str | None:
    return driver.find_element(By.CSS_SELECTOR, css).get_attribute(name)


def click(driver, css: str) -> None:
    """Click an element of a table that re-renders on live updates (retried when it went stale)."""

    def clicked(web):
        web.find_element(By.CSS_SELECTOR, css).click()
        return True

    wait_until(driver, clicked, f"cannot click {css}")


def text_of(driver, css: str) -> str:
    return js(driver, f"document.querySelector({css!r})?.textContent ?? ''")


def level_prices(driver, side: str) -> list[Decimal]:
    """The ladder's prices top to bottom, read in one go (the book re-renders on every update)."""
    rows = f"document.querySelectorAll('#book-{side} tbody tr[data-price]')"
    return [Decimal(price) for price in js(driver, f"[...{rows}].map(r => r.dataset.price)")]


def order_rows(driver) -> dict[str, str]:
    """Order id -> status, as the orders table shows them."""
    rows = "document.querySelectorAll('#orders tbody tr[data-order-id]')"
    return dict(js(driver, f"[...{rows}].map(r => [r.dataset.orderId, r.dataset.status])"))


def ensure_page(driver, system) -> None:
    if not driver.current_url.startswith(system.http):
        driver.get(f"{system.http}/")
    wait_until(driver, lambda d: js(d, "window.tradingGateway?.marketSocket.state") == "open", "market not connected")


def ensure_signed_in(driver, system) -> None:
    ensure_page(driver, system)
    if driver.find_element(By.ID, "trading-panel").is_displayed():
        return
    form = driver.find_element(By.ID, "login-form")
    form.find_element(By.NAME, "username").send_keys(DEMO_USER[0])
    form.find_element(By.NAME, "password").send_keys(DEMO_USER[1])
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait_until(driver, lambda d: d.find_element(By.ID, "trading-panel").is_displayed(), "trading panel not shown")
    wait_until(
        driver,
        lambda d: d.find_element(By.ID, "trading-conn").get_attribute("data-state") == "open",
        "the account socket did not connect",
    )


# --- the market, without signing in ----------------------------------------------------------------


def test_page_loads_with_no_console_errors(driver, browser_system):
    driver.get(f"{browser_system.http}/")
    assert driver.title.startswith("Trading gateway")
    ensure_page(driver, browser_system)
    wait_for_ticker_update(driver)
    assert driver.find_element(By.ID, "market-conn").text.endswith("connected")
    assert severe_console_errors(driver) == []


def test_simulated_market_data_is_badged(driver, browser_system):
    ensure_page(driver, browser_system)
    badge = driver.find_element(By.ID, "simulated-badge")
    wait_until(driver, lambda d: badge.is_displayed(), "no simulated-data badge")
    assert "simulated" in badge.text.lower()


def test_tickers_update_in_the_watchlist(driver, browser_system):
    ensure_page(driver, browser_system)
    for symbol in ("BTCUSDT", "ETHUSDT"):
        wait_for_ticker_update(driver, symbol)
    row = driver.find_element(By.CSS_SELECTOR, f'#watchlist tr[data-symbol="{SYMBOL}"]')
    price = row.find_element(By.CSS_SELECTOR, ".price").text
    change = row.find_element(By.CSS_SELECTOR, ".change").text
    assert price != "—" and Decimal(price.replace(",", "")) > 0
    assert change.endswith("%") and change[0] in "+-0"


def test_order_book_renders_best_first(driver, browser_system):
    ensure_page(driver, browser_system)
    wait_until(driver, lambda d: len(level_prices(d, "bids")) >= 3 and len(level_prices(d, "asks")) >= 3, "no book")
    bids, asks = level_prices(driver, "bids"), level_prices(driver, "asks")
    assert bids == sorted(bids, reverse=True), f"bids not best (highest) first: {bids}"
    assert asks == sorted(asks), f"asks not best (lowest) first: {asks}"
    assert bids[0] < asks[0]
    assert driver.find_element(By.ID, "book-spread").text.startswith("Spread")


def test_trade_tape_and_chart_follow_the_selected_symbol(driver, browser_system):
    ensure_page(driver, browser_system)
    driver.find_element(By.CSS_SELECTOR, '#watchlist tr[data-symbol="ETHUSDT"]').click()
    wait_until(driver, lambda d: d.find_element(By.ID, "chart-title").text == "ETHUSDT", "ETHUSDT not selected")
    trades = "#trade-tape tbody tr.buy, #trade-tape tbody tr.sell"
    wait_until(driver, lambda d: len(d.find_elements(By.CSS_SELECTOR, trades)) >= 2, "no ETHUSDT trades on the tape")
    driver.find_element(By.CSS_SELECTOR, f'#watchlist tr[data-symbol="{SYMBOL}"]').click()
    wait_until(driver, lambda d: d.find_element(By.ID, "chart-title").text == SYMBOL, f"{SYMBOL} not selected")
    points = f"window.tradingGateway.market.chart.series.get('{SYMBOL}')?.length ?? 0"
    wait_until(driver, lambda d: js(d, points) >= 2, "the chart has no trades")


# --- signed in ---------------------------------------------------------------------------------


def test_a_wrong_password_is_refused_on_the_form(driver, browser_system):
    ensure_page(driver, browser_system)
    if driver.find_element(By.ID, "trading-panel").is_displayed():
        driver.find_element(By.ID, "logout").click()
    form = driver.find_element(By.ID, "login-form")
    form.find_element(By.NAME, "username").send_keys(DEMO_USER[0])
    form.find_element(By.NAME, "password").send_keys("not-the-password")
    form.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    error = driver.find_element(By.ID, "login-error")
    wait_until(driver, lambda d: error.text == "Wrong username or password", "no error shown for a wrong password")
    assert not driver.find_element(By.ID, "trading-panel").is_displayed()
    form.find_element(By.NAME, "username").clear()
    form.find_element(By.NAME, "password").clear()
    # Chromium logs the refused POST /api/token/ (401) itself; nothing else may be logged.
    assert severe_console_errors(driver, allowed=("/api/token/ - Failed to load resource",)) == []


def test_signing_in_shows_the_trading_panel(driver, browser_system):
    ensure_signed_in(driver, browser_system)
    assert driver.find_element(By.ID, "user-name").text == DEMO_USER[0]
    wait_until(driver, lambda d: d.find_element(By.ID, "portfolio-value").text.endswith("USDT"), "no portfolio value")
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, "#bots tr[data-bot-id]"), "no bots listed")
    assert severe_console_errors(driver) == []


def test_a_market_order_is_shown_filled(driver, browser_system):
    ensure_signed_in(driver, browser_system)
    before = set(order_rows(driver))
    form = driver.find_element(By.ID, "order-form")
    Select(form.find_element(By.ID, "order-symbol")).select_by_value(SYMBOL)
    Select(form.find_element(By.ID, "order-type")).select_by_value("market")
    form.find_element(By.CSS_SELECTOR, ".seg-buy").click()
    quantity = form.find_element(By.ID, "order-quantity")
    quantity.clear()
    quantity.send_keys("0.01")
    form.find_element(By.ID, "order-submit").click()
    new_id = wait_until(driver, lambda d: next(iter(set(order_rows(d)) - before), None), "the order is not listed")
    wait_until(driver, lambda d: order_rows(d).get(new_id) == "filled", f"order {new_id} not shown filled")
    row = text_of(driver, f'#orders tr[data-order-id="{new_id}"]')
    assert "filled" in row and SYMBOL in row
    wait_until(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'#positions tr[data-symbol="{SYMBOL}"]'),
        "the position is not in the portfolio",
    )
    assert severe_console_errors(driver) == []


def test_a_limit_order_can_be_placed_and_canceled(driver, browser_system):
    ensure_signed_in(driver, browser_system)
    before = set(order_rows(driver))
    form = driver.find_element(By.ID, "order-form")
    Select(form.find_element(By.ID, "order-type")).select_by_value("limit")
    price = form.find_element(By.ID, "order-price")
    price.clear()
    price.send_keys("1000")  # far below the market: it rests
    form.find_element(By.ID, "order-submit").click()
    new_id = wait_until(driver, lambda d: next(iter(set(order_rows(d)) - before), None), "limit order not listed")
    wait_until(driver, lambda d: order_rows(d).get(new_id) == "new", f"order {new_id} not open")
    click(driver, f'#orders tr[data-order-id="{new_id}"] button')
    wait_until(driver, lambda d: order_rows(d).get(new_id) == "canceled", f"order {new_id} not canceled")
    Select(form.find_element(By.ID, "order-type")).select_by_value("market")


def test_a_bot_can_be_started_and_reports_running(driver, browser_system):
    ensure_signed_in(driver, browser_system)
    selector = "#bots tr[data-bot-id]"
    wait_until(driver, lambda d: d.find_elements(By.CSS_SELECTOR, selector), "no bots listed")
    bot_id = attribute(driver, selector, "data-bot-id")
    bot_row = f'#bots tr[data-bot-id="{bot_id}"]'
    if attribute(driver, bot_row, "data-status") == "running":
        click(driver, f"{bot_row} button[data-action=stop]")
        wait_until(driver, lambda d: attribute(d, bot_row, "data-status") != "running", "the bot did not stop")
    click(driver, f"{bot_row} button[data-action=start]")
    wait_until(
        driver,
        lambda d: attribute(d, bot_row, "data-status") == "running",
        f"bot {bot_id} not shown running",
    )
    assert text_of(driver, f"{bot_row} button[data-action=stop]") == "Stop"
    assert severe_console_errors(driver) == []


# --- the server restarts ---------------------------------------------------------------------------


def test_the_page_reconnects_by_itself_after_a_server_restart(driver, browser_system):
    ensure_signed_in(driver, browser_system)
    wait_for_ticker_update(driver)
    severe_console_errors(driver)  # read (and so clear) the log up to here

    browser_system.gateway.service.stop()
    wait_until(
        driver,
        lambda d: js(d, "window.tradingGateway.marketSocket.state") in ("reconnecting", "connecting"),
        "the page did not notice that the server went away",
    )
    indicator = driver.find_element(By.ID, "market-conn")
    wait_until(driver, lambda d: "reconnecting" in indicator.text, "the indicator does not say reconnecting")
    time.sleep(2)  # stay down across a few attempts

    browser_system.gateway = browser_system.stack.daphne(browser_system.gateway.port)
    wait_for_ticker(browser_system, SYMBOL)
    wait_until(driver, lambda d: attribute(d, "#market-conn", "data-state") == "open", "no reconnect", RESTART_WAIT)
    wait_until(
        driver,
        lambda d: d.find_element(By.ID, "trading-conn").get_attribute("data-state") == "open",
        "the account socket did not reconnect",
        RESTART_WAIT,
    )
    # Data flows again, on subscriptions the page made again by itself.
    wait_for_ticker_update(driver)
    wait_for_ticker_update(driver, "ETHUSDT")
    wait_until(driver, lambda d: len(level_prices(d, "bids")) >= 3, "the order book is not back")
    assert js(driver, "window.tradingGateway.marketSocket.subscriptions.orderbook") == [SYMBOL]
    status = browser_system.gateway.status()
    assert status["connections_by_endpoint"].get("market", 0) >= 1
    assert status["connections_by_endpoint"].get("trading", 0) >= 1
    assert severe_console_errors(driver, allowed=EXPECTED_WHILE_DOWN) == []

    # Trading events flow again too: an order placed now is shown filled.
    test_a_market_order_is_shown_filled(driver, browser_system)

    chromium.save_full_page(driver, ARTIFACTS / "trading-screen.png")
