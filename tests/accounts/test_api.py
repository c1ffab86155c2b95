"""The trading REST API: each caller sees and touches only its own objects; decimals are strings."""

import pytest
from rest_framework.test import APIClient

from accounts.models import Bot, Order, RiskLimit
from tests.accounts.factories import api_client, make_bot, make_symbol, make_user, place, set_price

pytestmark = pytest.mark.django_db

ORDER_FIELDS = {
    "id",
    "symbol",
    "side",
    "type",
    "status",
    "quantity",
    "filled_quantity",
    "remaining_quantity",
    "price",
    "average_price",
    "created_at",
    "updated_at",
}


@pytest.fixture(autouse=True)
def symbols():
    make_symbol("BTCUSDT", step="0.0001", tick="0.01")
    make_symbol("ETHUSDT", step="0.001", tick="0.01")


@pytest.fixture
def user():
    return make_user("alice")


@pytest.fixture
def client(user):
    return api_client(user)


def limit_buy(**overrides) -> dict:
    return {"symbol": "BTCUSDT", "side": "buy", "type": "limit", "quantity": "0.5", "price": "49000", **overrides}


# --- orders --------------------------------------------------------------------------------------


def test_a_limit_order_is_created_with_every_contract_field_as_strings(client):
    response = client.post("/api/orders/", limit_buy(), format="json")
    assert response.status_code == 201, response.data
    body = response.json()
    assert body.keys() >= ORDER_FIELDS
    assert body == {
        **body,
        "symbol": "BTCUSDT",
        "side": "buy",
        "type": "limit",
        "status": "new",
        "quantity": "0.5",
        "filled_quantity": "0",
        "remaining_quantity": "0.5",
        "price": "49000",
        "average_price": None,
    }
    assert body["created_at"].endswith("Z")


def test_a_market_order_fills_at_the_last_price(client):
    set_price("BTCUSDT", "50000.5")
    body = client.post("/api/orders/", {"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": "0.1"}).json()
    assert (body["status"], body["average_price"], body["price"]) == ("filled", "50000.5", None)


def test_a_market_order_without_a_known_price_is_refused_with_a_reason(client):
    response = client.post("/api/orders/", {"symbol": "BTCUSDT", "side": "sell", "type": "market", "quantity": "1"})
    assert response.status_code == 400
    assert "no market price known yet for BTCUSDT" in str(response.json())


def test_a_buy_beyond_the_balance_gets_a_400_saying_what_is_missing(client):
    set_price("BTCUSDT", "50000")
    response = client.post("/api/orders/", {"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": "1000"})
    assert response.status_code == 400
    [message] = response.json()["quantity"]
    assert "insufficient balance" in message and "missing 49950000 USDT" in message


def test_an_order_carries_its_accumulated_fee(client):
    set_price("BTCUSDT", "50000")
    response = client.post("/api/orders/", {"symbol": "BTCUSDT", "side": "buy", "type": "market", "quantity": "0.5"})
    assert response.status_code == 201 and response.json()["fee"] == "25"


def test_cancel_all_cancels_the_callers_open_orders_and_says_how_many(client):
    for _ in range(2):
        assert client.post("/api/orders/", limit_buy(), format="json").status_code == 201
    response = client.post("/api/orders/cancel-all/", {"symbol": "BTCUSDT"}, format="json")
    assert response.status_code == 200 and response.json()["canceled"] == 2
    assert {o["status"] for o in response.json()["orders"]} == {"canceled"}
    assert client.post("/api/orders/cancel-all/", {}, format="json").json()["canceled"] == 0


def test_cancel_all_of_an_unknown_symbol_is_a_400(client):
    response = client.post("/api/orders/cancel-all/", {"symbol": "NOPE"}, format="json")
    assert response.status_code == 400 and "symbol" in response.json()


def test_integer_quantities_are_accepted(client):
    response = client.post("/api/orders/", limit_buy(quantity=2, price=49000), format="json")
    assert response.status_code == 201 and response.json()["quantity"] == "2"


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        (limit_buy(symbol="DOGEUSDT"), "symbol"),
        (limit_buy(quantity="0"), "quantity"),
        (limit_buy(quantity="-1"), "quantity"),
        (limit_buy(quantity="abc"), "quantity"),
        (limit_buy(quantity=0.5), "quantity"),
        (limit_buy(quantity="0.00005"), "quantity"),
        (limit_buy(price=None), "price"),
        (limit_buy(price="0"), "price"),
        (limit_buy(price=49000.5), "price"),
        (limit_buy(side="long"), "side"),
        (limit_buy(type="stop"), "type"),
        ({"side": "buy", "type": "limit", "quantity": "1", "price": "1"}, "symbol"),
    ],
)
def test_invalid_orders_get_a_400_naming_the_field_and_nothing_is_stored(client, payload, field):
    response = client.post("/api/orders/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json(), response.json()
    assert not Order.objects.exists()


def test_a_float_quantity_is_refused_with_advice_to_send_a_string(client):
    response = client.post("/api/orders/", limit_buy(quantity=0.5), format="json")
    assert "as strings" in response.json()["quantity"][0]


def test_orders_are_listed_newest_first_and_only_the_callers(client, user):
    other = make_user("bob")
    first, second = place(user, "buy", "0.1", price="100"), place(user, "buy", "0.2", price="100")
    place(other, "buy", "0.3", price="100")
    body = client.get("/api/orders/").json()
    assert [o["id"] for o in body] == [second.pk, first.pk]


def test_orders_can_be_filtered_to_the_open_ones(client, user):
    set_price("BTCUSDT", "50000")
    place(user, "buy", "0.1")
    resting = place(user, "buy", "0.1", price="100")
    assert [o["id"] for o in client.get("/api/orders/?status=open").json()] == [resting.pk]
    assert client.get("/api/orders/?status=bogus").status_code == 400


def test_an_order_can_be_cancelled(client, user):
    order = place(user, "buy", "0.1", price="100")
    response = client.post(f"/api/orders/{order.pk}/cancel/")
    assert response.status_code == 200
    assert response.json()["status"] == "canceled" and response.json()["remaining_quantity"] == "0"


def test_cancel_of_a_finished_order_is_a_400_that_changes_nothing(client, user):
    set_price("BTCUSDT", "50000")
    order = place(user, "buy", "0.1")
    response = client.post(f"/api/orders/{order.pk}/cancel/")
    assert response.status_code == 400
    assert "already filled" in response.json()["detail"]
    order.refresh_from_db()
    assert order.status == "filled"


def test_another_users_order_is_a_404_to_read_and_to_cancel(client):
    order = place(make_user("bob"), "buy", "0.1", price="100")
    assert client.get(f"/api/orders/{order.pk}/").status_code == 404
    assert client.post(f"/api/orders/{order.pk}/cancel/").status_code == 404
    order.refresh_from_db()
    assert order.status == "new"


def test_the_api_needs_a_token():
    assert APIClient().get("/api/orders/").status_code == 401
    assert APIClient().get("/api/portfolio/").status_code == 401


# --- bots ----------------------------------------------------------------------------------------


def test_a_bot_is_created_stopped_with_its_params_and_zero_performance(client):
    payload = {"name": "DCA BTC", "symbol": "BTCUSDT", "params": {"quote_amount": "100", "interval_seconds": 10}}
    response = client.post("/api/bots/", payload, format="json")
    assert response.status_code == 201, response.json()
    assert response.json() == {
        **response.json(),
        "name": "DCA BTC",
        "strategy": "dca",
        "symbol": "BTCUSDT",
        "status": "stopped",
        "params": {"quote_amount": "100", "interval_seconds": 10},
        "performance": {
            "total_pnl": "0",
            "win_rate": "0",
            "trades_today": 0,
            "realized_pnl": "0",
            "unrealized_pnl": "0",
            "fees": "0",
        },
    }


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"name": "x", "symbol": "NOPE", "params": {"quote_amount": "1", "interval_seconds": 5}}, "symbol"),
        ({"name": "x", "symbol": "BTCUSDT", "params": {"quote_amount": 1.5, "interval_seconds": 5}}, "params"),
        ({"name": "x", "symbol": "BTCUSDT", "strategy": "martingale", "params": {}}, "strategy"),
        ({"name": "x", "symbol": "BTCUSDT", "strategy": "grid", "params": {}}, "params"),
        ({"symbol": "BTCUSDT", "params": {"quote_amount": "1", "interval_seconds": 5}}, "name"),
    ],
)
def test_invalid_bots_get_a_400_naming_the_field(client, payload, field):
    response = client.post("/api/bots/", payload, format="json")
    assert response.status_code == 400 and field in response.json(), response.json()
    assert not Bot.objects.exists()


def test_a_bot_can_be_started_and_stopped(client, user):
    bot = make_bot(user)
    assert client.post(f"/api/bots/{bot.pk}/start/").json()["status"] == "running"
    assert client.post(f"/api/bots/{bot.pk}/start/").json()["status"] == "running"  # idempotent
    assert client.post(f"/api/bots/{bot.pk}/stop/").json()["status"] == "stopped"


def test_bots_are_listed_only_for_their_owner_and_others_are_404(client, user):
    mine, theirs = make_bot(user), make_bot(make_user("bob"))
    assert [b["id"] for b in client.get("/api/bots/").json()] == [mine.pk]
    assert client.post(f"/api/bots/{theirs.pk}/start/").status_code == 404
    theirs.refresh_from_db()
    assert theirs.status == "stopped"


# --- portfolio and risk limits -------------------------------------------------------------------


def test_the_portfolio_shows_cash_and_positions_at_market(client, user):
    set_price("BTCUSDT", "50000")
    place(user, "buy", "0.5")
    set_price("BTCUSDT", "52000")
    body = client.get("/api/portfolio/").json()
    assert body == {
        "currency": "USDT",
        "cash": "74975",
        "total_value": "100975",
        "unrealized_pnl": "1000",
        "realized_pnl": "-25",
        "fees": "25",
        "balances": [{"asset": "BTC", "free": "0.5", "locked": "0"}, {"asset": "USDT", "free": "74975", "locked": "0"}],
        "positions": [
            {
                "symbol": "BTCUSDT",
                "quantity": "0.5",
                "average_price": "50000",
                "market_price": "52000",
                "market_value": "26000",
                "unrealized_pnl": "1000",
                "realized_pnl": "-25",
                "fees": "25",
            }
        ],
    }


def test_a_new_user_starts_with_paper_cash_and_no_positions(client):
    assert client.get("/api/portfolio/").json() == {
        "currency": "USDT",
        "cash": "100000",
        "total_value": "100000",
        "unrealized_pnl": "0",
        "realized_pnl": "0",
        "fees": "0",
        "balances": [{"asset": "USDT", "free": "100000", "locked": "0"}],
        "positions": [],
    }


def test_a_risk_limit_is_created_then_replaced(client):
    created = client.post("/api/risk-limits/", {"symbol": "BTCUSDT", "max_notional": "5000"}, format="json")
    assert created.status_code == 201 and created.json()["max_notional"] == "5000"
    replaced = client.post("/api/risk-limits/", {"symbol": "btcusdt", "max_notional": "7500.5"}, format="json")
    assert replaced.status_code == 200 and replaced.json()["id"] == created.json()["id"]
    assert [(r["symbol"], r["max_notional"]) for r in client.get("/api/risk-limits/").json()] == [("BTCUSDT", "7500.5")]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"symbol": "NOPE", "max_notional": "1"}, "symbol"),
        ({"symbol": "BTCUSDT", "max_notional": "0"}, "max_notional"),
        ({"symbol": "BTCUSDT", "max_notional": 10.5}, "max_notional"),
        ({"symbol": "BTCUSDT"}, "max_notional"),
    ],
)
def test_invalid_risk_limits_get_a_400(client, payload, field):
    response = client.post("/api/risk-limits/", payload, format="json")
    assert response.status_code == 400 and field in response.json()
    assert not RiskLimit.objects.exists()


def test_risk_limits_are_listed_only_for_their_owner(client):
    other = api_client(make_user("bob"))
    other.post("/api/risk-limits/", {"symbol": "BTCUSDT", "max_notional": "5000"}, format="json")
    assert client.get("/api/risk-limits/").json() == []


def test_over_max_open_orders_per_user_a_new_limit_order_gets_a_400(client, settings):
    settings.APP = type(settings.APP)(**{**settings.APP.__dict__, "max_open_orders_per_user": 1})
    assert client.post("/api/orders/", limit_buy(), format="json").status_code == 201
    response = client.post("/api/orders/", limit_buy(), format="json")
    assert response.status_code == 400 and "MAX_OPEN_ORDERS_PER_USER=1" in str(response.json())


def test_over_max_bots_per_user_a_new_bot_gets_a_400(client, settings):
    settings.APP = type(settings.APP)(**{**settings.APP.__dict__, "max_bots_per_user": 1})
    payload = {"name": "b", "symbol": "BTCUSDT", "params": {"quote_amount": "100", "interval_seconds": 10}}
    assert client.post("/api/bots/", payload, format="json").status_code == 201
    response = client.post("/api/bots/", payload, format="json")
    assert response.status_code == 400 and "MAX_BOTS_PER_USER=1" in str(response.json())


def test_a_grid_bot_is_created_with_its_params(client):
    params = {"lower": "45000", "upper": "55000", "levels": 11, "quantity_per_level": "0.001"}
    response = client.post(
        "/api/bots/", {"name": "grid", "symbol": "BTCUSDT", "strategy": "grid", "params": params}, format="json"
    )
    assert response.status_code == 201, response.json()
    assert (response.json()["strategy"], response.json()["params"]) == ("grid", params)
