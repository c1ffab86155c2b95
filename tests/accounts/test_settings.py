"""The paper-trading settings in tradingsite.config: defaults, overrides and clear refusals."""

from __future__ import annotations

from decimal import Decimal as D

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradingsite import config

SECRET = {"DJANGO_SECRET_KEY": "a-real-secret-key-for-these-tests-0123456789"}


def test_the_paper_trading_defaults_are_the_contracts():
    app = config.load(SECRET)
    assert (app.taker_fee_rate, app.maker_fee_rate) == (D("0.001"), D("0.001"))
    assert (app.max_price_age, app.max_open_orders_per_user, app.max_bots_per_user) == (10.0, 200, 20)


def test_the_environment_overrides_them():
    app = config.load(
        {
            **SECRET,
            "TAKER_FEE_RATE": "0.00075",
            "MAKER_FEE_RATE": "0",
            "MAX_PRICE_AGE": "2.5",
            "MAX_OPEN_ORDERS_PER_USER": "10000",
            "MAX_BOTS_PER_USER": "3",
        }
    )
    assert (app.taker_fee_rate, app.maker_fee_rate) == (D("0.00075"), D("0"))
    assert (app.max_price_age, app.max_open_orders_per_user, app.max_bots_per_user) == (2.5, 10000, 3)


@pytest.mark.parametrize(
    ("name", "value", "fragment"),
    [
        ("TAKER_FEE_RATE", "0.5", "between 0 and 0.1"),
        ("MAKER_FEE_RATE", "-0.001", "between 0 and 0.1"),
        ("MAKER_FEE_RATE", "a lot", "between 0 and 0.1"),
        ("MAX_PRICE_AGE", "0", "positive number"),
        ("MAX_OPEN_ORDERS_PER_USER", "0", "at least 1"),
        ("MAX_BOTS_PER_USER", "many", "whole number"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name, value, fragment):
    with pytest.raises(ImproperlyConfigured) as caught:
        config.load({**SECRET, name: value})
    assert name in str(caught.value) and fragment in str(caught.value)
