"""The paper exchange over the running system: spot balances, liquidity, time and the grid bot.

Local exchange -> runstream worker (keeps the books, matches resting orders on trades, runs bots)
-> Redis -> daphne (REST places orders against the book the worker stored). The local exchange
prints no trades but the ones a test asks for; its books walk unless the test pauses them.
"""

from __future__ import annotations

import contextlib
from decimal import ROUND_FLOOR, Decimal

import pytest

from tests.integration.harness import Client, ahttp_json
from tests.integration.test_trading_flow import (
    SLOW,
    book_around,
    is_bot,
    new_user,
    signed_in,
    sole_engine,  # noqa: F401  (the fixture, used through pytestmark)
    tape,
)

pytestmark = pytest.mark.usefixtures("sole_engine")

FEE_RATE = Decimal("0.001")  # TAKER_FEE_RATE and MAKER_FEE_RATE defaults


def fee(quantity: Decimal, price: Decimal) -> Decimal:
    value = (quantity * price).quantize(Decimal("1e-12"), rounding=ROUND_FLOOR)
    return (value * FEE_RATE).quantize(Decimal("1e-12"), rounding=ROUND_FLOOR)


@contextlib.asynccontextmanager
async def frozen_book(gateway, exchange, symbol: str):
    """Pause the exchange's book and wait until the gateway serves exactly the exchange's book.

    The worker stores each book before it publishes it, so once /ws/market shows the book at the
    exchange's last update id, market orders on daphne walk that very book. Yields (bids, asks).
    """
    await exchange.control("pause")
    try:
        status, depth = await ahttp_json("GET", f"{exchange.rest_url}/api/v3/depth?symbol={symbol}&limit=20")
        assert status == 200, depth
        async with await Client.connect(f"{gateway.ws}/ws/market") as market:
            await market.subscribe({"type": "subscribe_orderbook", "symbols": [symbol]})
            book = await market.recv_until(
                lambda m: m["type"] == "orderbook" and m.get("last_update_id") == depth["lastUpdateId"], timeout=SLOW
            )
        yield [(Decimal(p), Decimal(q)) for p, q in book["bids"]], [(Decimal(p), Decimal(q)) for p, q in book["asks"]]
    finally:
        await exchange.control("resume")


def of_bot(message: dict, bot_id: int) -> bool:
    return message["type"] == "order_update" and message.get("bot_id") == str(bot_id)


async def test_a_buy_beyond_the_balance_is_refused_with_a_message_and_changes_nothing(
    worker, live_gateway, exchange, stack
):
    user = await new_user(stack, "spender")
    async with tape(live_gateway, exchange, "BTCUSDT") as btc, signed_in(live_gateway, user) as spender:
        await btc.print("50000.00")
        status, body = await spender.call(
            "POST", "orders/", {"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": "1000"}
        )
        limit_status, limit_body = await spender.call(
            "POST", "orders/", {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": "3", "price": "49000"}
        )
        sell_status, sell_body = await spender.call(
            "POST", "orders/", {"symbol": "BTCUSDT", "side": "sell", "type": "limit", "quantity": "1", "price": "60000"}
        )
        _, orders = await spender.call("GET", "orders/")
        _, portfolio = await spender.call("GET", "portfolio/")
    assert status == 400 and "insufficient balance" in body["quantity"][0] and "USDT" in body["quantity"][0], body
    assert limit_status == 400 and "missing 47147 USDT" in limit_body["quantity"][0], limit_body
    assert sell_status == 400 and "needs 1 BTC" in sell_body["quantity"][0], sell_body
    assert orders == [] and portfolio["balances"] == [{"asset": "USDT", "free": "100000", "locked": "0"}]


async def test_a_limit_order_crossed_by_a_smaller_trade_is_partially_filled_then_filled(
    worker, live_gateway, exchange, stack
):
    user = await new_user(stack, "patient")
    async with tape(live_gateway, exchange, "BNBUSDT") as bnb, signed_in(live_gateway, user) as patient:
        printed = await bnb.print("300.00")
        await book_around(live_gateway, printed)
        order = await patient.place(symbol="BNBUSDT", side="buy", type="limit", quantity="1.0", price="295.00")
        new = await patient.order_reaches(order["id"], "new")
        await bnb.print("294.00", quantity="0.3")
        partial = await patient.order_reaches(order["id"], "partially_filled")
        await bnb.print("295.00", quantity="2")
        filled = await patient.order_reaches(order["id"], "filled")
        _, rest = await patient.call("GET", f"orders/{order['id']}/")
        _, portfolio = await patient.call("GET", "portfolio/")
    assert (order["status"], new["fee"]) == ("new", "0")
    assert (partial["filled_quantity"], partial["remaining_quantity"], partial["average_price"]) == (
        "0.3",
        "0.7",
        "295",
    )
    assert Decimal(partial["fee"]) == fee(Decimal("0.3"), Decimal("295"))
    assert (filled["filled_quantity"], filled["remaining_quantity"], filled["average_price"]) == ("1", "0", "295")
    assert Decimal(filled["fee"]) == Decimal(rest["fee"]) == Decimal("0.295")
    usdt = next(b for b in portfolio["balances"] if b["asset"] == "USDT")
    assert (Decimal(usdt["free"]), Decimal(usdt["locked"])) == (Decimal("100000") - Decimal("295.295"), 0)


async def test_a_market_order_bigger_than_the_top_level_gets_the_vwap_of_the_levels_it_took(
    worker, live_gateway, exchange, stack
):
    user = await new_user(stack, "sweeper")
    async with (
        tape(live_gateway, exchange, "SOLUSDT") as sol,
        signed_in(live_gateway, user) as sweeper,
        frozen_book(live_gateway, exchange, "SOLUSDT") as (_bids, asks),
    ):
        await sol.print(str(asks[0][0]), quantity="0.001")  # a fresh last price (MAX_PRICE_AGE); the book stays
        (top, top_quantity), (second, second_quantity) = asks[0], asks[1]
        extra = min(second_quantity, top_quantity) / 2
        extra = extra.quantize(Decimal("0.001"), rounding=ROUND_FLOOR) or Decimal("0.001")
        quantity = top_quantity + extra
        order = await sweeper.place(symbol="SOLUSDT", side="buy", type="market", quantity=str(quantity))
        filled = await sweeper.order_reaches(order["id"], "filled")
    expected = ((top * top_quantity + second * extra) / quantity).quantize(Decimal("1e-12"))
    assert order["status"] == "filled" and Decimal(order["average_price"]) == expected
    assert Decimal(filled["average_price"]) == expected and Decimal(filled["filled_quantity"]) == quantity
    assert Decimal(order["fee"]) == fee(top_quantity, top) + fee(extra, second)


async def test_an_order_placed_after_a_dip_does_not_fill_at_the_dip(worker, live_gateway, exchange, stack):
    user = await new_user(stack, "latecomer")
    async with tape(live_gateway, exchange, "ETHUSDT") as eth, signed_in(live_gateway, user) as latecomer:
        await eth.print("3000.00")
        await eth.print_now("2900.00")  # the dip: printed, not waited for
        printed = await eth.print("3000.00")  # recovered
        await book_around(live_gateway, printed)
        order = await latecomer.place(symbol="ETHUSDT", side="buy", type="limit", quantity="0.01", price="2950.00")
        marker = await latecomer.place(symbol="ETHUSDT", side="buy", type="limit", quantity="0.01", price="2990.00")
        await eth.print("2990.00", quantity="0.01")  # fills the marker only: a trade after both orders
        await latecomer.order_reaches(marker["id"], "filled")
        _, after = await latecomer.call("GET", f"orders/{order['id']}/")
        assert latecomer.statuses_of(order["id"]) == ["new"], "a trade before the order was placed must not fill it"
        await eth.print("2950.00", quantity="1")  # a later trade at its price does
        filled = await latecomer.order_reaches(order["id"], "filled")
    assert after["status"] == "new" and Decimal(filled["average_price"]) == Decimal("2950")


async def test_a_grid_bot_places_its_ladder_and_replaces_a_filled_level(worker, live_gateway, exchange, stack):
    user = await new_user(stack, "gridder")
    params = {"lower": "0.4000", "upper": "0.6000", "levels": 5, "quantity_per_level": "100"}
    async with tape(live_gateway, exchange, "ADAUSDT") as ada, signed_in(live_gateway, user) as gridder:
        printed = await ada.print("0.5200")
        await book_around(live_gateway, printed)
        status, bot = await gridder.call(
            "POST", "bots/", {"name": "ada-grid", "symbol": "ADAUSDT", "strategy": "grid", "params": params}
        )
        assert status == 201, bot
        try:
            await gridder.bot_action(bot["id"], "start")
            ladder = [await gridder.next(lambda m: of_bot(m, bot["id"])) for _ in range(3)]
            level = next(m for m in ladder if m["price"] == "0.5")
            await ada.print("0.4990", quantity="500")  # fills the 0.5 buy
            await gridder.order_reaches(int(level["order_id"]), "filled")
            counter = await gridder.next(lambda m: of_bot(m, bot["id"]) and m["side"] == "sell")
            status_after = await gridder.next(lambda m: is_bot(m, bot["id"], "running"))
        finally:
            await gridder.bot_action(bot["id"], "stop")
        await gridder.next(lambda m: is_bot(m, bot["id"], "stopped"))
        _, orders = await gridder.call("GET", "orders/?symbol=ADAUSDT")
    assert sorted((m["side"], m["price"]) for m in ladder) == [("buy", "0.4"), ("buy", "0.45"), ("buy", "0.5")]
    assert (counter["side"], counter["price"], counter["status"]) == ("sell", "0.55", "new")
    assert status_after["performance"]["trades_today"] == 1 and status_after["performance"]["fees"] == "0.05"
    assert {o["status"] for o in orders if o["bot_id"] == bot["id"] and o["id"] != int(level["order_id"])} == {
        "canceled"
    }, "stopping a grid bot cancels its ladder"
