"""Builders of server messages for tests, through realtime.protocol (so they are on the contract).

Each takes keyword overrides of its defaults. Market messages carry no `seq`: publishing assigns it.
"""

from __future__ import annotations

import itertools
from decimal import Decimal

from realtime import protocol

EXCHANGE_TIME = "2023-12-01T12:00:00.000Z"
_trade_ids = itertools.count(10**9)  # far above any trade id the simulator reaches during a test


def ticker(symbol: str = "BTCUSDT", price: str = "50000.00", **overrides) -> dict:
    fields = {
        "symbol": symbol,
        "price": price,
        "price_change": "1250.00",
        "price_change_percent": "2.56",
        "high_price": "51000.00",
        "low_price": "48500.00",
        "volume": "1250.75",
        "timestamp": EXCHANGE_TIME,
    }
    return protocol.ticker(**{**fields, **overrides})


def trade(symbol: str = "BTCUSDT", price: str = "50000.00", side: str = "buy", **overrides) -> dict:
    fields = {
        "symbol": symbol,
        "price": price,
        "quantity": "0.1",
        "side": side,
        "timestamp": EXCHANGE_TIME,
        "trade_id": next(_trade_ids),
    }
    return protocol.trade(**{**fields, **overrides})


def orderbook(symbol: str = "BTCUSDT", bid: str = "49950.00", **overrides) -> dict:
    fields = {
        "symbol": symbol,
        "bids": [[bid, "1.5"], ["49940.00", "2.1"]],
        "asks": [["50050.00", "1.2"], ["50060.00", "0.8"]],
        "timestamp": EXCHANGE_TIME,
    }
    return protocol.orderbook(**{**fields, **overrides})


def order_update_fields(**overrides) -> dict:
    fields = {
        "order_id": 123456,
        "symbol": "BTCUSDT",
        "side": "buy",
        "order_type": "limit",
        "status": "filled",
        "quantity": Decimal("0.50"),
        "price": Decimal("50000.00"),
        "filled_quantity": Decimal("0.50"),
        "remaining_quantity": Decimal("0"),
        "average_price": Decimal("50000.00"),
    }
    return {**fields, **overrides}


def order_update(**overrides) -> dict:
    return protocol.order_update(**order_update_fields(**overrides))


def risk_alert_fields(**overrides) -> dict:
    fields = {
        "alert_type": "position_limit_exceeded",
        "severity": "high",
        "message": "Position limit exceeded for BTCUSDT",
        "limit_value": Decimal("10000.00"),
        "current_value": Decimal("12000.000"),
    }
    return {**fields, **overrides}


def risk_alert(**overrides) -> dict:
    return protocol.risk_alert(**risk_alert_fields(**overrides))


def bot_status(**overrides) -> dict:
    fields = {
        "bot_id": 7,
        "name": "DCA Bot",
        "status": "running",
        "performance": {"total_pnl": Decimal("250.50"), "win_rate": Decimal("65.50"), "trades_today": 15},
    }
    return protocol.bot_status(**{**fields, **overrides})


def portfolio(**overrides) -> dict:
    fields = {
        "total_value": Decimal("12500.1000"),
        "positions": [
            {
                "symbol": "BTCUSDT",
                "quantity": Decimal("0.250"),
                "average_price": Decimal("48000.0"),
                "market_price": Decimal("50000.40"),
                "market_value": Decimal("12500.10"),
                "unrealized_pnl": Decimal("500.10"),
                "realized_pnl": Decimal("0"),
            }
        ],
    }
    return protocol.portfolio(**{**fields, **overrides})
