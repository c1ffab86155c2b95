from decimal import Decimal

import pytest

from accounts.money import (
    DecimalParseError,
    fits_column,
    is_multiple,
    parse_decimal,
    percent,
    quantize,
    round_down_to_step,
)


@pytest.mark.parametrize(
    ("raw", "expected"), [("0.5", "0.5"), (" 100 ", "100"), (3, "3"), ("-2.50", "-2.50"), (".5", "0.5")]
)
def test_plain_decimal_strings_and_integers_are_accepted(raw, expected):
    assert parse_decimal(raw) == Decimal(expected)


@pytest.mark.parametrize("raw", [0.5, True, None, "", "abc", "1e-3", "NaN", "Infinity", "1,5", [1]])
def test_floats_exponents_and_non_numbers_are_refused(raw):
    with pytest.raises(DecimalParseError):
        parse_decimal(raw)


def test_a_float_is_refused_with_advice_to_send_a_string():
    with pytest.raises(DecimalParseError, match="as strings"):
        parse_decimal(0.1)


def test_derived_amounts_round_half_even_to_twelve_places():
    assert quantize(Decimal("1.0000000000005")) == Decimal("1.000000000000")
    assert quantize(Decimal("1.0000000000015")) == Decimal("1.000000000002")


def test_a_quantity_is_a_multiple_of_the_step_only_in_whole_steps():
    assert is_multiple(Decimal("0.0030"), Decimal("0.001"))
    assert not is_multiple(Decimal("0.0035"), Decimal("0.001"))
    assert is_multiple(Decimal("0.123456789"), Decimal("0"))


def test_rounding_to_the_step_never_rounds_up():
    assert round_down_to_step(Decimal("0.0019999"), Decimal("0.001")) == Decimal("0.001")
    assert round_down_to_step(Decimal("0.0009"), Decimal("0.001")) == 0


def test_amounts_that_do_not_fit_the_columns_are_recognised():
    assert fits_column(Decimal("123456.123456789012"))
    assert fits_column(Decimal("0.003300000000000000"))
    assert not fits_column(Decimal("1.0000000000001"))
    assert not fits_column(Decimal("1e15"))
    assert not fits_column(Decimal("NaN"))


def test_percent_has_two_places_and_is_zero_of_nothing():
    assert percent(2, 3) == Decimal("66.67")
    assert percent(0, 0) == 0
