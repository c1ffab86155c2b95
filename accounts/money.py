"""Decimal handling for quantities, prices and money: parsing client text, one precision, one rounding.

Pure. Every amount in the trading domain is a Decimal stored in a DecimalField(max_digits=30,
decimal_places=12): at most 18 digits before the point and 12 after. Derived amounts (average
prices, PnL, cash, market values) are rounded half-even to 12 places; percentages to 2 places.
Nothing here ever touches a float.

Fill values and fees are rounded down (`quantize_down`), reservations up (`quantize_up`): a buy
limit order's reservation then always covers what its fills cost, whatever the fills' sizes.
On SQLite, amounts are stored as fixed-width text (`to_sortable` / `from_sortable`) that sorts
like the numbers, because SQLite's own numeric storage keeps only 15 significant digits.
"""

from __future__ import annotations

import functools
import re
from decimal import (
    ROUND_CEILING,
    ROUND_DOWN,
    ROUND_FLOOR,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    InvalidOperation,
    localcontext,
)

from realtime import protocol

MAX_DIGITS = 30
DECIMAL_PLACES = 12
PLACES = Decimal(1).scaleb(-DECIMAL_PLACES)  # 1E-12
PERCENT_PLACES = Decimal("0.01")
ZERO = Decimal(0)
# Anything at or above this does not fit the columns once multiplied out; refuse it up front.
MAX_AMOUNT = Decimal(10) ** 15
# Stored amounts have up to 30 digits and their products up to 60: the default context (28 digits)
# would round them, or make quantize raise, once amounts pass about 10^16. Money arithmetic that
# can get there runs in this one.
WIDE = Context(prec=80)


def wide(function):
    """Run a function's Decimal arithmetic in the WIDE context (exact for every stored amount)."""

    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with localcontext(WIDE):
            return function(*args, **kwargs)

    return wrapper


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
    return value.quantize(PLACES, rounding=ROUND_HALF_EVEN, context=WIDE)


def quantize_down(value: Decimal) -> Decimal:
    """Toward minus infinity: what the paper exchange pays or charges for a fill never exceeds the exact value."""
    return value.quantize(PLACES, rounding=ROUND_FLOOR, context=WIDE)


def quantize_up(value: Decimal) -> Decimal:
    """Toward plus infinity: what an order reserves is never below what it may need."""
    return value.quantize(PLACES, rounding=ROUND_CEILING, context=WIDE)


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
    """A Decimal in plain notation without trailing zeros, for messages meant for people: the same
    text the wire carries (realtime.protocol.decimal_str, the one definition)."""
    return protocol.decimal_str(value)


# --- storage on SQLite ------------------------------------------------------------------------------

_INTEGER_DIGITS = MAX_DIGITS - DECIMAL_PLACES  # 18
_COMPLEMENT = Decimal(10) ** _INTEGER_DIGITS
_SORTABLE_WIDTH = _INTEGER_DIGITS + 1 + DECIMAL_PLACES


def fits_storage(value: Decimal) -> bool:
    """Whether a value is exactly representable in DecimalField(30, 12)."""
    if not value.is_finite():
        return False
    return value == quantize(value) and value.copy_abs() < _COMPLEMENT


def to_sortable(value: Decimal) -> str:
    """Fixed-width text whose string order is the numeric order (negatives as 10^18 complements after "-").

    0 -> "000000000000000000.000000000000"; -1 -> "-999999999999999999.000000000000".
    """
    if not value.is_finite() or value.copy_abs() >= _COMPLEMENT:
        raise ValueError(f"{value} does not fit DecimalField({MAX_DIGITS}, {DECIMAL_PLACES})")
    exact = quantize(value)  # as PostgreSQL's numeric(30, 12) would; inputs are validated to fit before
    if exact < 0:
        return "-" + format(WIDE.add(_COMPLEMENT, exact), "f").zfill(_SORTABLE_WIDTH)
    return format(WIDE.add(exact, 0), "f").zfill(_SORTABLE_WIDTH)  # + 0 turns -0 into 0


def from_sortable(text: str) -> Decimal:
    """The inverse of to_sortable; also reads plain decimal text (rows written before the encoding)."""
    if len(text) == _SORTABLE_WIDTH + 1 and text.startswith("-"):
        return quantize(WIDE.subtract(Decimal(text[1:]), _COMPLEMENT))
    return quantize(Decimal(text))
