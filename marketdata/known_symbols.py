"""Binance's spot filters for the default symbols, shipped so a fresh database trades by the real rules.

`sync_symbols` replaces them with the exchange's current values; these are what
`GET https://api.binance.com/api/v3/exchangeInfo` listed for each symbol's PRICE_FILTER (tickSize),
LOT_SIZE (stepSize) and NOTIONAL (minNotional). The local exchange simulator uses the same ticks
and steps (marketdata/exchange_model.py), so the demo refuses a price off its tick either way.
"""

from __future__ import annotations

from marketdata.normalize import SymbolInfo

KNOWN_SYMBOLS: dict[str, SymbolInfo] = {
    info.name: info
    for info in (
        SymbolInfo("BTCUSDT", "TRADING", "BTC", "USDT", step_size="0.00001", tick_size="0.01", min_notional="5"),
        SymbolInfo("ETHUSDT", "TRADING", "ETH", "USDT", step_size="0.0001", tick_size="0.01", min_notional="5"),
        SymbolInfo("BNBUSDT", "TRADING", "BNB", "USDT", step_size="0.001", tick_size="0.01", min_notional="5"),
        SymbolInfo("SOLUSDT", "TRADING", "SOL", "USDT", step_size="0.001", tick_size="0.01", min_notional="5"),
        SymbolInfo("ADAUSDT", "TRADING", "ADA", "USDT", step_size="0.1", tick_size="0.0001", min_notional="5"),
        SymbolInfo("XRPUSDT", "TRADING", "XRP", "USDT", step_size="0.1", tick_size="0.0001", min_notional="5"),
    )
}
