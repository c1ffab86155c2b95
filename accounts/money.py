"""Decimal handling for quantities, prices and money: parsing client text, one precision, one rounding.

Pure. Every amount in the trading domain is a Decimal stored in a DecimalField(max_digits=30,
decimal_places=12): at most 18 digits before the point and 12 after. Derived amounts (average
prices, PnL, cash, market values) are rounded half-even to 12 places; percentages to 2 places.
Nothing here ever touches a float.
"""

from __future__ import annotations

import re
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal, InvalidOperation

MAX_DIGITS = 30
DECIMAL_PLACES = 12
PLACES = Decimal(1).scaleb(-DECIMAL_PLACES)  # 1E-12
PERCENT_PLACES = Decimal("0.01")
ZERO = Decimal(0)
# Anything at or above this does not fit the columns once multiplied out; refuse it up front.
MAX_AMOUNT = Decimal(10) ** 15

_PLAIN_DECIMAL = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)$")


class DecimalParseError(ValueError):
    """Text or a JSON value that is not a plain decimal number."""


def parse_decimal(value: object) -> Decimal:
    """A Decimal from a string in plain notation ("0.5", "100") or an int; floats and bools are refused.

    JSON numbers with a fraction arrive as floats, which have already lost the exact value the
    client meant, so they are refused rather than guessed at.
    """
    if isinstance(value, bool):
        raise DecimalParseError('expected a decimal number as a string, e.g. "0.5"')
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float):
        raise DecimalParseError(
            'send decimal numbers as strings, e.g. "0.5": JSON numbers with a fraction lose precision'
        )
    if not isinstance(value, str):
        raise DecimalParseError('expected a decimal number as a string, e.g. "0.5"')
    text = value.strip()
    if not _PLAIN_DECIMAL.match(text):
        raise DecimalParseError(f'{value!r} is not a decimal number; use plain notation such as "0.5"')
    try:
        return Decimal(text)
    except InvalidOperation:  # pragma: no cover - the pattern admits only valid literals
        raise DecimalParseError(f"{value!r} is not a decimal number") from None


def quantize(value: Decimal) -> Decimal:
    """Round a derived amount to the stored precision (half-even, as banks and exchanges do)."""
    return value.quantize(PLACES, rounding=ROUND_HALF_EVEN)


def percent(part: int, whole: int) -> Decimal:
    """part / whole as a percentage with two places; 0 when whole is 0."""
    if whole == 0:
        return ZERO
    return (Decimal(part) * 100 / Decimal(whole)).quantize(PERCENT_PLACES, rounding=ROUND_HALF_EVEN)


def fits_column(value: Decimal) -> bool:
    """Whether a client-supplied amount fits DecimalField(30, 12) without rounding."""
    if not value.is_finite():
        return False
    exponent = value.normalize().as_tuple().exponent  # trailing zeros do not count: 0.50 fits like 0.5
    places = -exponent if isinstance(exponent, int) and exponent < 0 else 0
    return places <= DECIMAL_PLACES and abs(value) < MAX_AMOUNT


def is_multiple(value: Decimal, step: Decimal) -> bool:
    """Whether value is a whole number of steps (a step of 0 means any value is allowed)."""
    if step <= 0:
        return True
    return value % step == 0


def round_down_to_step(value: Decimal, step: Decimal) -> Decimal:
    """The largest whole number of steps not above value (quantities are never rounded up)."""
    if step <= 0:
        return value
    steps = (value / step).to_integral_value(rounding=ROUND_DOWN)
    return steps * step


def plain(value: Decimal) -> str:
    """A Decimal in plain notation without trailing zeros, for messages meant for people."""
    text = format(value.normalize(), "f")
    return "0" if text in {"-0", ""} else text
