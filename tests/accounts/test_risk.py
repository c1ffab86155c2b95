from decimal import Decimal as D

import pytest

from accounts.risk import RiskVerdict, alert_message, evaluate, severity

LIMIT = D("5000")


def walk(*notionals: str) -> list[bool]:
    """Which of a series of notionals alert, starting un-breached."""
    breached, alerts = False, []
    for value in notionals:
        verdict = evaluate(breached=breached, notional=D(value), limit=LIMIT)
        breached = verdict.breached
        alerts.append(verdict.alert)
    return alerts


def test_crossing_above_the_limit_alerts_once_not_on_every_tick():
    assert walk("4000", "5001", "6000", "7000") == [False, True, False, False]


def test_being_exactly_at_the_limit_is_not_a_breach():
    assert evaluate(breached=False, notional=LIMIT, limit=LIMIT) == RiskVerdict(breached=False, alert=False)


def test_a_new_alert_needs_the_position_to_go_back_under_the_limit_first():
    assert walk("5100", "4000", "5100") == [True, False, True]


def test_wobbling_just_under_the_limit_does_not_re_arm_the_alert():
    assert walk("5100", "4990", "5010", "4940", "5010") == [True, False, False, False, True]


@pytest.mark.parametrize(
    ("value", "expected"), [("5100", "medium"), ("6000", "high"), ("7500", "high"), ("9000", "critical")]
)
def test_severity_grows_with_how_far_above_the_limit_the_position_is(value, expected):
    assert severity(notional=D(value), limit=LIMIT) == expected


def test_the_alert_message_names_the_symbol_and_both_values_plainly():
    message = alert_message("BTCUSDT", notional=D("6000.000000000000"), limit=D("5000"))
    assert "BTCUSDT" in message and "6000" in message and "5000" in message and "000000" not in message
