"""The local exchange's public REST market data: query parameters in, Binance's bodies out. Pure.

Every body comes from the market model (exchange_model.py), so REST agrees with the streams: the
24 h ticker, the klines summed over the same minutes, the trades the trade streams carried. Bad
parameters raise RestError with Binance's HTTP status, code and message.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import orjson

from marketdata.exchange_model import INTERVALS, SimulatedMarket

DEFAULT_LIMIT, MAX_LIMIT = 500, 1000  # trades, aggTrades, klines
MAX_DEPTH = 5000

Markets = Mapping[str, SimulatedMarket]


class RestError(Exception):
    """A request Binance refuses: `status` is the HTTP status, `body` Binance's {"code", "msg"}."""

    def __init__(self, status: int, code: int, msg: str):
        super().__init__(msg)
        self.status, self.body = status, {"code": code, "msg": msg}


def bad_symbol() -> RestError:
    return RestError(400, -1121, "Invalid symbol.")


def market_of(markets: Markets, symbol: Any) -> SimulatedMarket:
    market = markets.get(symbol.upper()) if isinstance(symbol, str) else None
    if market is None:
        raise bad_symbol()
    return market


def depth(markets: Markets, params: dict, _now: int) -> dict:
    limit = _int(params, "limit", 100)
    if not 1 <= limit <= MAX_DEPTH:
        raise RestError(400, -1100, f"Illegal characters found in parameter 'limit'; legal range is '1-{MAX_DEPTH}'.")
    return _market(markets, params).depth_snapshot(limit)


def trades(markets: Markets, params: dict, _now: int) -> list[dict]:
    return _market(markets, params).rest_trades(_limit(params))


def agg_trades(markets: Markets, params: dict, _now: int) -> list[dict]:
    market = _market(markets, params)
    from_id = _optional_int(params, "fromId")
    start, end = _optional_int(params, "startTime"), _optional_int(params, "endTime")
    if from_id is not None and (start is not None or end is not None):
        raise RestError(400, -1128, "Combination of optional parameters invalid.")
    return market.rest_agg_trades(from_id, start, end, _limit(params))


def klines(markets: Markets, params: dict, now: int) -> list[list]:
    market = _market(markets, params)
    interval = params.get("interval")
    if not interval:
        raise _missing("interval")
    if interval not in INTERVALS:
        raise RestError(400, -1120, "Invalid interval.")
    start, end = _optional_int(params, "startTime"), _optional_int(params, "endTime")
    return market.rest_klines(interval, now, start, end, _limit(params))


def avg_price(markets: Markets, params: dict, now: int) -> dict:
    return _market(markets, params).rest_avg_price(now)


def ticker_24hr(markets: Markets, params: dict, now: int) -> dict | list[dict]:
    kind = str(params.get("type", "FULL")).upper()
    if kind not in ("FULL", "MINI"):
        raise RestError(400, -1139, "Invalid ticker type.")
    return _each(markets, params, lambda m: m.rest_ticker(now, mini=kind == "MINI"))


def ticker_price(markets: Markets, params: dict, _now: int) -> dict | list[dict]:
    return _each(markets, params, SimulatedMarket.rest_price)


def book_ticker(markets: Markets, params: dict, _now: int) -> dict | list[dict]:
    return _each(markets, params, SimulatedMarket.rest_book_ticker)


def exchange_info(markets: Markets, params: dict, now: int, rate_limits: list[dict]) -> dict:
    chosen = _chosen(markets, params)
    return {
        "timezone": "UTC",
        "serverTime": now,
        "rateLimits": rate_limits,
        "exchangeFilters": [],
        "symbols": [m.exchange_info() for m in (chosen if chosen is not None else markets.values())],
    }


REST_TIME_KEYS = frozenset({"serverTime", "time", "T", "openTime", "closeTime"})


def in_microseconds(path: str, body: Any) -> Any:
    """A body with every time in microseconds (the `X-MBX-TIME-UNIT: MICROSECOND` header)."""
    if path in ("/api/v3/klines", "/api/v3/uiKlines"):
        return [[row[0] * 1000, *row[1:6], row[6] * 1000, *row[7:]] for row in body]
    if isinstance(body, list):
        return [in_microseconds(path, item) for item in body]
    if isinstance(body, dict):
        return {k: v * 1000 if k in REST_TIME_KEYS and isinstance(v, int) else v for k, v in body.items()}
    return body


ROUTES: dict[str, Callable[[Markets, dict, int], Any]] = {
    "/api/v3/depth": depth,
    "/api/v3/trades": trades,
    "/api/v3/aggTrades": agg_trades,
    "/api/v3/klines": klines,
    "/api/v3/uiKlines": klines,
    "/api/v3/avgPrice": avg_price,
    "/api/v3/ticker/24hr": ticker_24hr,
    "/api/v3/ticker/price": ticker_price,
    "/api/v3/ticker/bookTicker": book_ticker,
}


# --- parameters (Binance's codes and messages) ----------------------------------------------------


def _missing(name: str) -> RestError:
    return RestError(400, -1102, f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.")


def _market(markets: Markets, params: dict) -> SimulatedMarket:
    if not params.get("symbol"):
        raise _missing("symbol")
    return market_of(markets, params["symbol"])


def _chosen(markets: Markets, params: dict) -> list[SimulatedMarket] | None:
    """The markets named by `symbol` or `symbols` (a JSON list), or None when neither is given."""
    if "symbol" in params and "symbols" in params:
        raise RestError(400, -1101, "Combination of optional parameters invalid.")
    if "symbol" in params:
        return [_market(markets, params)]
    if "symbols" not in params:
        return None
    try:
        names = orjson.loads(params["symbols"])
    except (orjson.JSONDecodeError, TypeError):
        names = None
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise RestError(400, -1100, "Illegal characters found in parameter 'symbols'; legal range is a JSON list.")
    return [market_of(markets, n) for n in names]


def _each(markets: Markets, params: dict, body: Callable[[SimulatedMarket], dict]) -> dict | list[dict]:
    """One object for `symbol`, else a list (for `symbols`, or every market)."""
    chosen = _chosen(markets, params)
    if chosen is not None and "symbol" in params:
        return body(chosen[0])
    return [body(m) for m in (chosen if chosen is not None else markets.values())]


def _optional_int(params: dict, name: str) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        return None
    text = str(value)
    if not text.isdigit() or len(text) > 20:
        legal = "'^[0-9]{1,20}$'"
        raise RestError(400, -1100, f"Illegal characters found in parameter '{name}'; legal range is {legal}.")
    return int(text)


def _int(params: dict, name: str, default: int) -> int:
    value = _optional_int(params, name)
    return default if value is None else value


def _limit(params: dict) -> int:
    """Binance's `limit`: 500 when not sent, at most 1000 (larger values are served as 1000)."""
    limit = _int(params, "limit", DEFAULT_LIMIT)
    if limit < 1:
        raise RestError(400, -1100, "Illegal characters found in parameter 'limit'; legal range is '1-1000'.")
    return min(limit, MAX_LIMIT)
