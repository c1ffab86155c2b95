"""Each service publishes what the user should see, to that user only, once committed."""

from decimal import Decimal as D

import pytest

from accounts import selectors, services
from accounts.exceptions import InvalidState
from tests.accounts.factories import (
    Inbox,
    in_thread,
    make_bot,
    make_limit,
    make_symbol,
    make_user,
    place,
    set_book,
    set_price,
)

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def alice():
    await in_thread(make_symbol)("BTCUSDT")
    return await in_thread(make_user)("alice")


@pytest.fixture
async def bob():
    return await in_thread(make_user)("bob")


async def test_a_filled_market_order_sends_new_then_filled_to_its_owner(alice):
    inbox = await Inbox.join(alice.pk, "orders")
    set_price("BTCUSDT", "50000")
    order = await in_thread(place)(alice, "buy", "0.5")
    placed, filled = await inbox.next(), await inbox.next()
    assert placed["status"] == "new" and placed["remaining_quantity"] == "0.5"
    assert filled == {
        **filled,
        "type": "order_update",
        "order_id": str(order.pk),
        "symbol": "BTCUSDT",
        "side": "buy",
        "status": "filled",
        "filled_quantity": "0.5",
        "remaining_quantity": "0",
        "average_price": "50000",
        "order_type": "market",
    }
    assert filled["timestamp"].endswith("Z")


async def test_a_market_order_the_book_cannot_fill_is_announced_canceled_with_its_reason(alice):
    inbox = await Inbox.join(alice.pk, "orders")
    set_price("BTCUSDT", "50000", book=False)
    set_book("BTCUSDT", [("49999", "1")], [("50000", "0.2")])
    await in_thread(place)(alice, "buy", "0.5")
    updates = [await inbox.next() for _ in range(3)]
    assert [u["status"] for u in updates] == ["new", "partially_filled", "canceled"]
    canceled = updates[-1]
    assert (canceled["filled_quantity"], canceled["fee"]) == ("0.2", "10")
    assert "held 0.2 of 0.5" in canceled["reason"]


async def test_events_reach_only_the_user_they_concern(alice, bob):
    bobs = await Inbox.join(bob.pk)
    alices = await Inbox.join(alice.pk, "orders")
    set_price("BTCUSDT", "50000")
    await in_thread(place)(alice, "buy", "0.5")
    await alices.next()
    assert await bobs.all() == []


async def test_a_cancel_is_announced_once_committed(alice):
    order = await in_thread(place)(alice, "buy", "1", price="100")
    inbox = await Inbox.join(alice.pk, "orders")
    await in_thread(services.order_cancel)(user_id=alice.pk, order_id=order.pk)
    update = await inbox.next()
    assert update["status"] == "canceled" and update["remaining_quantity"] == "0"


async def test_a_refused_cancel_publishes_nothing(alice):
    set_price("BTCUSDT", "50000")
    order = await in_thread(place)(alice, "buy", "0.5")
    inbox = await Inbox.join(alice.pk)
    with pytest.raises(InvalidState, match="already filled"):
        await in_thread(services.order_cancel)(user_id=alice.pk, order_id=order.pk)
    assert await inbox.all() == []


async def test_a_fill_sends_the_revalued_portfolio(alice):
    inbox = await Inbox.join(alice.pk, "portfolio")
    set_price("BTCUSDT", "50000")
    await in_thread(place)(alice, "buy", "0.5")
    portfolio = await inbox.next("portfolio")
    assert portfolio["cash"] == "74975" and portfolio["total_value"] == "99975" and portfolio["fees"] == "25"
    assert portfolio["balances"] == [
        {"asset": "BTC", "free": "0.5", "locked": "0"},
        {"asset": "USDT", "free": "74975", "locked": "0"},
    ]
    assert portfolio["positions"] == [
        {
            "symbol": "BTCUSDT",
            "quantity": "0.5",
            "average_price": "50000",
            "market_price": "50000",
            "market_value": "25000",
            "unrealized_pnl": "0",
            "realized_pnl": "-25",
            "fees": "25",
        }
    ]


async def test_a_fill_that_takes_a_position_over_its_limit_sends_one_risk_alert(alice):
    await in_thread(make_limit)(alice, "BTCUSDT", "5000")
    inbox = await Inbox.join(alice.pk, "risk_alerts")
    set_price("BTCUSDT", "50000")
    await in_thread(place)(alice, "buy", "0.2")  # notional 10000
    alert = await inbox.next()
    assert alert == {
        **alert,
        "type": "risk_alert",
        "alert_type": "position_limit_exceeded",
        "severity": "critical",
        "limit_value": "5000",
        "current_value": "10000",
        "symbol": "BTCUSDT",
    }
    assert "BTCUSDT" in alert["message"]
    await in_thread(place)(alice, "buy", "0.01")
    assert await inbox.all() == []  # still above: no second alert


async def test_bot_status_is_sent_on_every_status_change(alice):
    inbox = await Inbox.join(alice.pk, "bot_status")
    bot = await in_thread(make_bot)(alice)
    created = await inbox.next()
    await in_thread(services.bot_start)(user_id=alice.pk, bot_id=bot.pk)
    started = await inbox.next()
    await in_thread(services.bot_stop)(user_id=alice.pk, bot_id=bot.pk)
    stopped = await inbox.next()
    assert [created["status"], started["status"], stopped["status"]] == ["stopped", "running", "stopped"]
    assert started == {
        **started,
        "bot_id": str(bot.pk),
        "name": "DCA BTC",
        "performance": {
            "total_pnl": "0",
            "win_rate": "0",
            "trades_today": 0,
            "realized_pnl": "0",
            "unrealized_pnl": "0",
            "fees": "0",
        },
    }


async def test_a_bots_fill_sends_its_performance(alice):
    bot = await in_thread(make_bot)(alice)
    inbox = await Inbox.join(alice.pk, "bot_status")
    set_price("BTCUSDT", "50000")
    await in_thread(place)(alice, "buy", "0.002", bot_id=bot.pk)
    status = await inbox.next()
    assert status["performance"] == {
        "total_pnl": "-0.1",
        "win_rate": "0",
        "trades_today": 1,
        "realized_pnl": "-0.1",
        "unrealized_pnl": "0",
        "fees": "0.1",
    }


async def test_snapshots_list_open_orders_the_portfolio_and_bots(alice):
    set_price("BTCUSDT", "50000")
    await in_thread(place)(alice, "buy", "0.1")
    resting = await in_thread(place)(alice, "buy", "0.1", price="40000")
    await in_thread(make_bot)(alice)
    orders = await in_thread(selectors.open_order_messages)(user_id=alice.pk)
    assert [(m["type"], m["order_id"], m["status"]) for m in orders] == [("order_update", str(resting.pk), "new")]
    portfolio = await in_thread(selectors.portfolio_message)(user_id=alice.pk)
    assert portfolio["type"] == "portfolio" and D(portfolio["total_value"]) == D("99995")  # the 5 USDT fee
    assert portfolio["balances"] == [
        {"asset": "BTC", "free": "0.1", "locked": "0"},
        {"asset": "USDT", "free": "90991", "locked": "4004"},  # 100000 - 5005 paid - 4004 reserved
    ]
    [bot] = await in_thread(selectors.bot_status_messages)(user_id=alice.pk)
    assert bot["type"] == "bot_status" and bot["status"] == "stopped"


async def test_the_orders_snapshot_also_lists_orders_finished_within_the_window(alice):
    set_price("BTCUSDT", "50000")
    filled = await in_thread(place)(alice, "buy", "0.1")
    resting = await in_thread(place)(alice, "buy", "0.1", price="40000")
    within = await in_thread(selectors.order_snapshot_messages)(
        user_id=alice.pk, finished_within=900, finished_at_most=1000
    )
    outside = await in_thread(selectors.order_snapshot_messages)(
        user_id=alice.pk, finished_within=900, finished_at_most=0
    )
    assert [(m["order_id"], m["status"]) for m in within] == [(str(filled.pk), "filled"), (str(resting.pk), "new")]
    assert [(m["order_id"], m["status"]) for m in outside] == [(str(resting.pk), "new")]
