"""The demo page resumes its trading socket after losing it, in Debian's Chromium against the live system.

Orders rest, the page's daphne goes down, the worker fills every order while the page has no socket,
daphne comes back on the same port: the page reconnects by itself, resumes `orders` with `since`
(`recovered: true`) and its orders table shows every fill, with no page reload and no REST reload of
the orders (a hook on `fetch` counts the calls; a mark on `window` would vanish with a reload).
"""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from tests.browser.test_trading_screen import (
    EXPECTED_WHILE_DOWN,
    RESTART_WAIT,
    SYMBOL,
    ensure_signed_in,
    js,
    order_rows,
    severe_console_errors,
    wait_until,
)
from tests.integration import harness
from tests.integration.harness import Client
from tests.support import TIMEOUT
from tests.tools.live import wait_for_ticker

pytestmark = [pytest.mark.browser, pytest.mark.slow]

ORDERS = 10
WAIT = 30.0

HOOKS = """
window.__samePage = "yes";
window.__orderFetches = [];
const realFetch = window.fetch;
window.fetch = (resource, ...rest) => {
  if (String(resource?.url ?? resource).includes("/api/orders")) window.__orderFetches.push(String(resource));
  return realFetch(resource, ...rest);
};
window.__recoveries = [];
window.tradingGateway.tradingSocket.on("recovery", (event) => window.__recoveries.push(event));
"""


def rest_call(gateway: harness.Gateway, token: str, method: str, path: str, body: dict | None = None):
    return harness.http_json(method, f"{gateway.http}/api/{path}", body, token)


async def published(gateway: harness.Gateway, token: str, since: dict, order_ids: set[str]) -> None:
    """Wait until every order's `filled` update is in the orders history (read back with `since`)."""
    async with await Client.connect(f"{gateway.ws}/ws/trading?token={token}") as client:
        ack = await client.subscribe({"type": "subscribe", "channels": ["orders"], "since": {"orders": since}})
        assert ack["recovered"] == {"orders": True}, ack
        filled: set[str] = set()
        while not order_ids <= filled:
            message = await client.recv_until(lambda m: m["type"] == "order_update", timeout=3 * TIMEOUT)
            if message["status"] == "filled":
                filled.add(message["order_id"])


async def orders_position(gateway: harness.Gateway, token: str) -> dict:
    async with await Client.connect(f"{gateway.ws}/ws/trading?token={token}") as client:
        ack = await client.subscribe({"type": "subscribe", "channels": ["orders"]})
        return ack["positions"]["orders"]


def test_orders_filled_while_the_socket_was_down_are_shown_after_it_resumes(driver, browser_system):
    system = browser_system
    ensure_signed_in(driver, system)
    driver.execute_script(HOOKS)
    token = system.token()
    rest = system.stack.daphne()  # REST and a witness while the page's daphne is down
    ids: list[str] = []
    try:
        price = Decimal(wait_for_ticker(system, SYMBOL)["price"])
        resting = (price / 2).quantize(Decimal("0.01"))  # far below the random walk: only our print fills it
        for _ in range(ORDERS):
            order = {"symbol": SYMBOL, "side": "buy", "type": "limit", "quantity": "0.001", "price": str(resting)}
            status, body = rest_call(rest, token, "POST", "orders/", order)
            assert status == 201 and body["status"] == "new", body
            ids.append(str(body["id"]))
        wait_until(driver, lambda d: all(order_rows(d).get(i) == "new" for i in ids), "the orders are not shown", WAIT)
        since = asyncio.run(orders_position(rest, token))
        positions_before = js(driver, "window.tradingGateway.tradingSocket.positions['channels:orders']")
        assert positions_before == since, (positions_before, since)
        severe_console_errors(driver)  # read (and so clear) the log up to here

        system.gateway.service.stop()
        wait_until(
            driver,
            lambda d: js(d, "window.tradingGateway.tradingSocket.state") != "open",
            "the page did not notice that its server went away",
        )
        trade = {"symbol": SYMBOL, "price": str((resting * Decimal("0.9")).quantize(Decimal("0.01"))), "quantity": "5"}
        status, _ = harness.http_json("POST", f"http://127.0.0.1:{system.exchange_port}/_sim/trade", trade)
        assert status == 200
        asyncio.run(published(rest, token, since, set(ids)))  # every fill is stored before the page is back
        assert js(driver, "window.tradingGateway.tradingSocket.state") != "open"
        assert all(order_rows(driver).get(i) == "new" for i in ids), "a fill reached the page while it had no socket"

        system.gateway = system.stack.daphne(system.gateway.port)
        wait_until(
            driver,
            lambda d: all(order_rows(d).get(i) == "filled" for i in ids),
            "the page does not show every fill after reconnecting",
            RESTART_WAIT,
        )
        assert js(driver, "window.tradingGateway.tradingSocket.state") == "open"
        assert js(driver, "window.__samePage") == "yes", "the page was reloaded"
        assert js(driver, "window.__orderFetches") == [], "the orders were reloaded over REST"
        recoveries = js(driver, "window.__recoveries")
        assert recoveries and recoveries[-1]["recovered"] is True, recoveries
        assert recoveries[-1]["results"].get("channels:orders") is True, recoveries
        position = js(driver, "window.tradingGateway.tradingSocket.positions['channels:orders']")
        assert position["epoch"] == since["epoch"] and position["seq"] >= since["seq"] + ORDERS, (position, since)
        indicator = driver.find_element("id", "trading-conn")
        assert indicator.get_attribute("data-recovered") == "true"
        assert severe_console_errors(driver, allowed=EXPECTED_WHILE_DOWN) == []
    finally:
        for order_id in ids:
            rest_call(rest, token, "POST", f"orders/{order_id}/cancel/")
        rest.service.stop()
        if not system.gateway.service.alive():
            system.gateway = system.stack.daphne(system.gateway.port)
