"""Errors of the market-data app. Each message says what went wrong and, where it helps, what to do."""

from __future__ import annotations


class MarketDataError(Exception):
    """Base class: anything the market-data worker raises on purpose."""


class NormalizeError(MarketDataError, ValueError):
    """An exchange frame or REST body that is not what Binance documents: log it and skip it."""


class SnapshotError(MarketDataError):
    """The REST depth snapshot could not be fetched; the book stays unsynced and is retried."""


class FeedFailure(MarketDataError):
    """The exchange connection has to be replaced: stale feed, refused subscription, lost socket."""


class StaleFeed(FeedFailure):
    """No frame arrived for longer than the stale limit: treated like a dropped connection."""


class PlannedReconnect(MarketDataError):
    """Not a failure: the server announced a shutdown or the connection reached its maximum age."""
