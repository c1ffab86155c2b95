"""The admin goes through the services; seed_demo is repeatable."""

import pytest
from django.contrib.admin.sites import site
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client

from accounts.models import Balance, Bot, Order, RiskLimit
from marketdata.models import Symbol
from tests.accounts.factories import make_bot, make_symbol, make_user, place

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client():
    client = Client()
    client.force_login(make_user("root", is_staff=True, is_superuser=True))
    return client


def test_admin_start_and_stop_actions_change_bot_status(admin_client):
    make_symbol("BTCUSDT")
    bot = make_bot(make_user())
    url = "/admin/accounts/bot/"
    admin_client.post(url, {"action": "bot_start", "_selected_action": [bot.pk]})
    bot.refresh_from_db()
    assert bot.status == "running"
    admin_client.post(url, {"action": "bot_stop", "_selected_action": [bot.pk]})
    bot.refresh_from_db()
    assert bot.status == "stopped"


def test_admin_lists_filters_and_searches_bots_and_users(admin_client):
    make_symbol("BTCUSDT")
    make_bot(make_user("zoe"), name="Zoe's DCA")
    assert b"Zoe&#x27;s DCA" in admin_client.get("/admin/accounts/bot/?q=zoe&status__exact=stopped").content
    assert admin_client.get("/admin/auth/user/?q=zoe").status_code == 200


def test_admin_creates_bots_through_the_service_and_validates_params(admin_client):
    make_symbol("BTCUSDT")
    owner = make_user()
    form = {"owner": owner.pk, "name": "Admin DCA", "strategy": "dca", "symbol": "BTCUSDT"}
    bad = admin_client.post("/admin/accounts/bot/add/", {**form, "params": '{"quote_amount": "-5"}'})
    assert bad.status_code == 200 and not Bot.objects.exists()
    admin_client.post("/admin/accounts/bot/add/", {**form, "params": '{"quote_amount": "5", "interval_seconds": 30}'})
    assert Bot.objects.get().params == {"quote_amount": "5", "interval_seconds": 30}


def test_orders_and_positions_are_read_only_in_the_admin(admin_client):
    make_symbol("BTCUSDT")
    order = place(make_user(), "buy", "1", price="100")
    assert admin_client.get(f"/admin/accounts/order/{order.pk}/change/").status_code == 200
    for model in ("order", "position", "risklimit", "balance"):
        assert admin_client.get(f"/admin/accounts/{model}/").status_code == 200
        assert admin_client.get(f"/admin/accounts/{model}/add/").status_code == 403
    admin = site._registry[Order]
    assert not admin.has_change_permission(None) and not admin.has_delete_permission(None)


def test_the_admin_shows_each_users_free_and_locked_balances(admin_client):
    make_symbol("BTCUSDT")
    trader = make_user("hodler")
    place(trader, "buy", "1", price="100")  # locks 100.1 USDT
    listing = admin_client.get("/admin/auth/user/?q=hodler").content.decode()
    assert "USDT 99899.9 / 100.1" in listing
    detail = admin_client.get(f"/admin/auth/user/{trader.pk}/change/").content.decode()
    assert "99899.9" in detail and "100.1" in detail
    assert "hodler" in admin_client.get("/admin/accounts/balance/?q=hodler").content.decode()


def test_seed_demo_creates_users_symbols_a_limit_and_a_bot_and_can_run_twice(settings, capsys):
    call_command("seed_demo")
    call_command("seed_demo")
    output = capsys.readouterr().out
    assert "demo-pass-123" in output and "admin-pass-123" in output
    users = get_user_model().objects
    demo, admin = users.get(username="demo"), users.get(username="admin")
    assert demo.check_password("demo-pass-123") and not demo.is_staff
    assert admin.check_password("admin-pass-123") and admin.is_superuser
    assert set(Symbol.objects.filter(enabled=True).values_list("name", flat=True)) >= set(settings.APP.market_symbols)
    assert RiskLimit.objects.get(owner=demo, symbol="BTCUSDT").max_notional == 5000
    bot = Bot.objects.get(owner=demo)
    assert (bot.name, bot.status, bot.symbol) == ("DCA BTC", "stopped", "BTCUSDT")
    assert Balance.objects.get(owner=demo, asset="USDT").free == 100000, "the demo user can trade at once"
