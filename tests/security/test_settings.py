"""The security settings in the typed config: defaults, and values refused with a clear message."""

from __future__ import annotations

import pytest
from django.core.exceptions import ImproperlyConfigured

from tradingsite import config

PRODUCTION = {"DJANGO_SECRET_KEY": "a-real-secret-key-for-these-tests-0123456789"}


def test_defaults_lock_after_five_failures_and_believe_no_proxy():
    app = config.load(PRODUCTION)

    assert (app.login_failure_limit, app.login_rate_per_minute, app.trusted_proxy_count) == (5, 60, 0)
    assert (app.behind_https_proxy, app.hsts_seconds) == (False, 0)


def test_behind_an_https_proxy_hsts_lasts_a_year_unless_told_otherwise():
    behind = {**PRODUCTION, "DJANGO_BEHIND_HTTPS_PROXY": "1"}
    assert config.load(behind).hsts_seconds == 365 * 24 * 3600
    assert config.load({**behind, "DJANGO_HSTS_SECONDS": "300"}).hsts_seconds == 300


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("LOGIN_FAILURE_LIMIT", "0"),
        ("LOGIN_FAILURE_LIMIT", "five"),
        ("LOGIN_RATE_PER_MINUTE", "0"),
        ("TRUSTED_PROXY_COUNT", "-1"),
        ("TRUSTED_PROXY_COUNT", "1.5"),
        ("DJANGO_BEHIND_HTTPS_PROXY", "maybe"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(name, value):
    with pytest.raises(ImproperlyConfigured, match=name):
        config.load({**PRODUCTION, name: value})
