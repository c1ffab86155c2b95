"""Base and quote assets of an exchange symbol. Pure."""

from __future__ import annotations

# Longest first, so "FDUSD" wins over "USD"-like suffixes and "USDT" over "USD".
QUOTE_ASSETS = ("FDUSD", "USDT", "USDC", "BUSD", "TUSD", "BTC", "ETH", "BNB", "EUR", "TRY", "BRL", "DAI")


def split_symbol(symbol: str) -> tuple[str, str]:
    """BTCUSDT -> ("BTC", "USDT"); a symbol with no known quote asset keeps it all as the base."""
    name = symbol.upper()
    for quote in QUOTE_ASSETS:
        if name.endswith(quote) and len(name) > len(quote):
            return name[: -len(quote)], quote
    return name, ""
