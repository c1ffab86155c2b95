"""What the trading domain refuses, and why; the API turns these into DRF's error shape.

Each message says what to do about it. `field` names the input at fault, when there is one.
"""

from __future__ import annotations


class TradingError(Exception):
    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidInput(TradingError):
    """A request that can never succeed as sent (unknown symbol, bad quantity...): 400, nothing changed."""


class InvalidState(TradingError):
    """A request that conflicts with the object's current state (cancel a filled order): 400."""


class NotFound(TradingError):
    """No such object for this user; other users' objects are reported the same way (404)."""


class MarketUnavailable(InvalidState):
    """No fresh price or order book to fill a market order against (400); a bot waits and retries."""
