"""Bot lifecycle and the DCA step, through the services."""

from datetime import UTC, datetime, timedelta
from decimal import Decimal as D

import pytest

from accounts import selectors, services
from accounts.exceptions import InvalidInput, InvalidState, NotFound
from accounts.models import Bot, Order
from tests.accounts.factories import make_bot, make_symbol, make_user, place, set_price

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def btc():
    return make_symbol("BTCUSDT", step="0.0001")


@pytest.fixture
def user():
    return make_user()


def status_of(bot: Bot) -> str:
    bot.refresh_from_db()
    return bot.status


def test_a_bot_moves_between_running_paused_and_stopped(user):
    bot = make_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    services.bot_pause(user_id=user.pk, bot_id=bot.pk)
    assert status_of(bot) == "paused"
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    assert status_of(bot) == "running"
    services.bot_stop(user_id=user.pk, bot_id=bot.pk)
    assert status_of(bot) == "stopped"


def test_only_a_running_bot_can_be_paused(user):
    bot = make_bot(user)
    with pytest.raises(InvalidState, match="only a running bot"):
        services.bot_pause(user_id=user.pk, bot_id=bot.pk)


def test_another_users_bot_cannot_be_started(user):
    bot = make_bot(make_user())
    with pytest.raises(NotFound):
        services.bot_start(user_id=user.pk, bot_id=bot.pk)
    assert status_of(bot) == "stopped"


def test_a_bot_on_a_disabled_symbol_cannot_start(user):
    bot = make_bot(user)
    make_symbol("BTCUSDT", enabled=False)
    with pytest.raises(InvalidState, match="disabled"):
        services.bot_start(user_id=user.pk, bot_id=bot.pk)


def test_bot_params_are_stored_with_decimals_as_strings(user):
    bot = make_bot(user, params={"quote_amount": 250, "interval_seconds": 5})
    assert bot.params == {"quote_amount": "250", "interval_seconds": 5}


def test_a_bot_can_be_renamed_and_reconfigured(user):
    bot = make_bot(user)
    services.bot_update(
        user_id=user.pk, bot_id=bot.pk, name="Slow DCA", params={"quote_amount": "50", "interval_seconds": 60}
    )
    bot.refresh_from_db()
    assert (bot.name, bot.params["interval_seconds"]) == ("Slow DCA", 60)
    with pytest.raises(InvalidInput):
        services.bot_update(user_id=user.pk, bot_id=bot.pk, params={"quote_amount": "-1", "interval_seconds": 60})


def run(bot: Bot, now: datetime = NOW) -> Order | None:
    return services.bot_run_due(bot_id=bot.pk, now=now)


def test_a_running_dca_bot_places_a_market_buy_and_remembers_when(user):
    set_price("BTCUSDT", "40000")
    bot = make_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    order = run(bot)
    assert (order.bot_id, order.side, order.order_type, order.quantity, order.status) == (
        bot.pk,
        "buy",
        "market",
        D("0.0025"),
        "filled",
    )
    bot.refresh_from_db()
    assert bot.last_run_at == NOW


def test_a_dca_bot_waits_for_its_interval_and_for_a_price(user):
    bot = make_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    assert run(bot) is None  # no price yet
    set_price("BTCUSDT", "40000")
    assert run(bot) is not None
    assert run(bot, NOW + timedelta(seconds=9)) is None
    assert run(bot, NOW + timedelta(seconds=10)) is not None
    assert Order.objects.filter(bot=bot).count() == 2


def test_a_bot_that_is_not_running_does_nothing(user):
    set_price("BTCUSDT", "40000")
    bot = make_bot(user)
    assert run(bot) is None and not Order.objects.exists()


def test_a_dca_amount_below_one_step_puts_the_bot_in_error_with_the_reason(user):
    set_price("BTCUSDT", "40000")
    bot = make_bot(user, params={"quote_amount": "1", "interval_seconds": 10})
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    assert run(bot) is None
    bot.refresh_from_db()
    assert bot.status == "error" and "raise quote_amount" in bot.status_reason
    services.bot_start(user_id=user.pk, bot_id=bot.pk)  # a failed bot can be restarted
    bot.refresh_from_db()
    assert (bot.status, bot.status_reason) == ("running", "")


def test_all_running_bots_take_their_step_together(user):
    set_price("BTCUSDT", "40000")
    bots = [make_bot(user, name=f"bot {i}") for i in range(3)]
    for bot in bots[:2]:
        services.bot_start(user_id=user.pk, bot_id=bot.pk)
    orders = services.bots_run_due(now=NOW)
    assert sorted(o.bot_id for o in orders) == [bots[0].pk, bots[1].pk]


def test_bot_performance_counts_only_the_bots_own_fills(user):
    set_price("BTCUSDT", "40000")
    bot = make_bot(user)
    place(user, "buy", "1", bot_id=bot.pk)
    place(user, "buy", "1")  # the owner's own trade
    set_price("BTCUSDT", "41000")
    bot.refresh_from_db()  # the fill updated the performance kept on the bot's row
    figures = selectors.bot_performance(bot=bot)
    assert (figures.total_pnl, figures.trades_today, figures.fees) == (D("960"), 1, D("40"))


def test_a_stale_price_makes_a_dca_bot_wait_not_fail(user):
    bot = make_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    set_price("BTCUSDT", "40000", book=False)  # a price but no book: market orders are refused
    assert services.bot_run_due(bot_id=bot.pk, now=NOW) is None
    assert status_of(bot) == "running" and not Order.objects.exists()


def test_bots_are_capped_per_user(user, settings):
    settings.APP = type(settings.APP)(**{**settings.APP.__dict__, "max_bots_per_user": 2})
    make_bot(user)
    make_bot(user)
    with pytest.raises(InvalidInput, match="MAX_BOTS_PER_USER=2"):
        make_bot(user)
    assert Bot.objects.filter(owner=user).count() == 2
    make_bot(make_user())  # per user


# --- grid ----------------------------------------------------------------------------------------

GRID = {"lower": "90", "upper": "110", "levels": 5, "quantity_per_level": "0.5"}


def grid_bot(user, **params) -> Bot:
    return services.bot_create(
        user_id=user.pk, name="grid", symbol="BTCUSDT", strategy="grid", params={**GRID, **params}
    )


def open_orders(bot: Bot) -> list[tuple[str, D]]:
    return sorted(Order.objects.filter(bot=bot, status__in=Order.OPEN_STATUSES).values_list("side", "price"))


def test_a_started_grid_bot_places_its_ladder_once_a_price_is_known(user):
    bot = grid_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    assert services.bot_run_due(bot_id=bot.pk, now=NOW) is None  # no price yet: waits
    set_price("BTCUSDT", "100", book=False)
    services.bot_run_due(bot_id=bot.pk, now=NOW)
    assert open_orders(bot) == [("buy", D("90")), ("buy", D("95"))]  # nothing to sell yet
    services.bot_run_due(bot_id=bot.pk, now=NOW + timedelta(seconds=5))
    assert len(open_orders(bot)) == 2, "the ladder is placed once"


def test_a_filled_grid_buy_is_replaced_by_a_sell_one_level_up_and_the_bot_keeps_its_figures(user):
    bot = grid_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    set_price("BTCUSDT", "100", book=False)
    services.bot_run_due(bot_id=bot.pk, now=NOW)
    buy = Order.objects.get(bot=bot, price=D("95"))
    services.order_fill(order_id=buy.pk, price=D("95"))
    assert open_orders(bot) == [("buy", D("90")), ("sell", D("100"))]
    sell = Order.objects.get(bot=bot, side="sell")
    services.order_fill(order_id=sell.pk, price=D("100"))
    assert open_orders(bot) == [("buy", D("90")), ("buy", D("95"))]
    bot.refresh_from_db()
    figures = selectors.bot_performance(bot=bot)
    assert (figures.win_rate, figures.fees) == (100, D("0.0475") + D("0.05"))
    assert figures.total_pnl == D("2.5") - D("0.0975")


def test_a_paused_grid_bot_keeps_its_orders_but_replaces_none(user):
    bot = grid_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    set_price("BTCUSDT", "100", book=False)
    services.bot_run_due(bot_id=bot.pk, now=NOW)
    services.bot_pause(user_id=user.pk, bot_id=bot.pk)
    services.order_fill(order_id=Order.objects.get(bot=bot, price=D("95")).pk, price=D("95"))
    assert open_orders(bot) == [("buy", D("90"))]
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    services.bot_run_due(bot_id=bot.pk, now=NOW + timedelta(seconds=1))
    assert open_orders(bot) == [("buy", D("90"))], "resuming does not place the ladder again"


def test_stopping_a_grid_bot_cancels_its_orders_and_releases_their_reservations(user):
    bot = grid_bot(user)
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    set_price("BTCUSDT", "100", book=False)
    services.bot_run_due(bot_id=bot.pk, now=NOW)
    services.bot_stop(user_id=user.pk, bot_id=bot.pk)
    assert open_orders(bot) == []
    assert selectors.balance_list(user_id=user.pk)[-1].locked == 0


def test_a_grid_the_user_cannot_pay_for_goes_to_error_with_the_reason(user):
    bot = grid_bot(user, quantity_per_level="1000")
    services.bot_start(user_id=user.pk, bot_id=bot.pk)
    set_price("BTCUSDT", "100", book=False)
    services.bot_run_due(bot_id=bot.pk, now=NOW)
    bot.refresh_from_db()
    assert bot.status == "error" and "insufficient balance" in bot.status_reason


def test_a_grid_quantity_off_the_symbols_step_is_refused(user):
    with pytest.raises(InvalidInput, match="step size"):
        grid_bot(user, quantity_per_level="0.00005")
