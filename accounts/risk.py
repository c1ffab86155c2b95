"""Risk limits: when a position's notional crosses its limit, and how loud the alert is.

Pure. A limit is breached when notional (|quantity| x last price) is above max_notional; the alert
is sent on the crossing only, not on every tick above. The breach is re-armed once the notional is
back under the limit by a small band (REARM_RATIO), so a price wobbling around the limit does not
send an alert per wobble. The caller keeps the `breached` flag (RiskLimit.breached, under a row lock).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from accounts.money import plain

ALERT_TYPE = "position_limit_exceeded"
REARM_RATIO = Decimal("0.99")  # back under 99% of the limit before another alert can fire

# (notional / limit up to this ratio, severity), first match wins
_SEVERITIES = ((Decimal("1.1"), "medium"), (Decimal("1.5"), "high"))
_TOP_SEVERITY = "critical"


@dataclass(frozen=True)
class RiskVerdict:
    breached: bool  # the flag to keep from now on
    alert: bool  # whether this evaluation is a crossing that must be announced


def evaluate(*, breached: bool, notional: Decimal, limit: Decimal) -> RiskVerdict:
    """The new breach state for a notional against a limit, given whether it was breached before."""
    if notional > limit:
        return RiskVerdict(breached=True, alert=not breached)
    if breached and notional > limit * REARM_RATIO:
        return RiskVerdict(breached=True, alert=False)  # inside the band: still counts as breached
    return RiskVerdict(breached=False, alert=False)


def severity(*, notional: Decimal, limit: Decimal) -> str:
    if limit <= 0:
        return _TOP_SEVERITY
    ratio = notional / limit
    for upper, name in _SEVERITIES:
        if ratio <= upper:
            return name
    return _TOP_SEVERITY


def alert_message(symbol: str, *, notional: Decimal, limit: Decimal) -> str:
    return (
        f"Position limit exceeded for {symbol}: notional {plain(notional)} is above the limit of {plain(limit)}; "
        f"reduce the position or raise the limit"
    )
