"""Risk limits: set, checked after fills and on price moves, one alert per crossing."""

from decimal import Decimal as D

import pytest

from accounts import selectors, services
from accounts.models import RiskLimit
from tests.accounts.factories import make_limit, make_symbol, make_user, place, set_price

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def btc():
    return make_symbol("BTCUSDT")


def breached(user) -> bool:
    return RiskLimit.objects.get(owner=user, symbol="BTCUSDT").breached


def test_a_position_over_its_limit_is_flagged_once_and_cleared_back_under():
    user = make_user()
    set_price("BTCUSDT", "40000")
    place(user, "buy", "0.1")
    make_limit(user, "BTCUSDT", "5000")
    assert services.risk_limit_check(user_id=user.pk, symbol="BTCUSDT", price=D("51000")) is True
    assert services.risk_limit_check(user_id=user.pk, symbol="BTCUSDT", price=D("52000")) is False
    assert breached(user)
    assert services.risk_limit_check(user_id=user.pk, symbol="BTCUSDT", price=D("40000")) is False
    assert not breached(user)
    assert services.risk_limit_check(user_id=user.pk, symbol="BTCUSDT", price=D("51000")) is True


def test_setting_a_limit_below_the_current_position_alerts_at_once():
    user = make_user()
    set_price("BTCUSDT", "40000")
    place(user, "buy", "0.2")
    limit = make_limit(user, "BTCUSDT", "5000")
    assert limit.breached


def test_raising_the_limit_clears_the_breach():
    user = make_user()
    set_price("BTCUSDT", "40000")
    place(user, "buy", "0.2")
    make_limit(user, "BTCUSDT", "5000")
    assert not make_limit(user, "BTCUSDT", "10000").breached


def test_price_moves_check_only_the_limits_of_holders():
    holder, flat = make_user(), make_user()
    set_price("BTCUSDT", "40000")
    place(holder, "buy", "0.1")
    make_limit(holder, "BTCUSDT", "5000")
    make_limit(flat, "BTCUSDT", "1")
    assert services.risk_limits_check(symbol="BTCUSDT", price=D("60000")) == 1
    assert breached(holder) and not breached(flat)


def test_a_user_without_a_limit_gets_no_alert():
    user = make_user()
    set_price("BTCUSDT", "40000")
    place(user, "buy", "2")
    assert services.risk_limit_check(user_id=user.pk, symbol="BTCUSDT", price=D("40000")) is False


def test_only_symbols_with_a_limit_are_named_for_checks():
    make_symbol("ETHUSDT")
    user = make_user()
    set_price("BTCUSDT", "40000")
    make_limit(user, "BTCUSDT", "5000")
    assert selectors.symbols_with_risk_limits(symbols=["BTCUSDT", "ETHUSDT", "ADAUSDT"]) == {"BTCUSDT"}
    assert selectors.symbols_with_risk_limits(symbols=[]) == set()


def test_a_revaluation_round_still_alerts_on_a_limited_symbol_among_many():
    from accounts import engine

    holder = make_user()
    set_price("BTCUSDT", "40000")
    place(holder, "buy", "0.1")
    make_limit(holder, "BTCUSDT", "5000")
    engine._revalue({"BTCUSDT", "ETHUSDT", "ADAUSDT"}, {"BTCUSDT": D("60000"), "ETHUSDT": D("1"), "ADAUSDT": D("1")})
    assert breached(holder)
