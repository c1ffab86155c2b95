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
