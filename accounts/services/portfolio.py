"""Portfolio: publishing a user's valuation (balances, positions, PnL) to that user only."""

from __future__ import annotations

import logging

from accounts import selectors
from accounts.services._common import Prices, on_commit
from realtime import publish

logger = logging.getLogger("accounts.services")


def portfolio_publish(*, user_id: int, prices: Prices | None = None) -> None:
    """Send the user's current valuation (after a fill: once that fill is committed)."""
    fields = selectors.portfolio_fields(selectors.portfolio_get(user_id=user_id, prices=prices))
    on_commit(lambda: publish.publish_portfolio(user_id, **fields))


def portfolios_publish(*, user_ids: list[int], prices: Prices) -> None:
    """Revalue several users' portfolios at new prices (the engine throttles how often)."""
    for user_id in user_ids:
        try:
            portfolio_publish(user_id=user_id, prices=prices)
        except Exception:
            logger.exception("portfolio revaluation for user %s failed", user_id)
