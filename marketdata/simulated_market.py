"""One simulated market: a Decimal random walk with a consistent order book. Pure (no sockets, no clock).

The simulator (simulator.py) steps each market and sends what it returns. The book lives on a grid
of `levels` prices per side around an anchor that walks; every step changes at least one level,
and update ids grow by one per changed level, strictly consecutive across events and the REST
snapshot, so Binance's local order book procedure syncs against it exactly.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from decimal import Decimal

from marketdata.assets import split_symbol

PRICE_PLACES = Decimal("0.00000001")  # Binance prints prices and quantities with 8 decimals
PERCENT_PLACES = Decimal("0.001")
DAY_MS = 86_400_000

# symbol -> (start price, tick size, lot step size), roughly what the exchange uses
PROFILES: dict[str, tuple[str, str, str]] = {
    "BTCUSDT": ("50000.00", "0.01", "0.00001"),
    "ETHUSDT": ("3000.00", "0.01", "0.0001"),
    "BNBUSDT": ("300.00", "0.01", "0.001"),
    "SOLUSDT": ("100.00", "0.01", "0.001"),
    "ADAUSDT": ("0.5000", "0.0001", "0.1"),
    "XRPUSDT": ("0.6000", "0.0001", "0.1"),
}
DEFAULT_PROFILE = ("10.000", "0.001", "0.01")


def fmt(value: Decimal) -> str:
    """A Decimal the way Binance writes numbers: fixed point, 8 decimals."""
    return f"{value.quantize(PRICE_PLACES):f}"


@dataclass
class Pending:
    """Book changes not yet sent on one depth stream: merged, the latest quantity per price wins."""

    first_update_id: int | None = None
    final_update_id: int = 0
    bids: dict[Decimal, Decimal] = field(default_factory=dict)
    asks: dict[Decimal, Decimal] = field(default_factory=dict)

    def add(self, first: int, final: int, bids: dict, asks: dict) -> None:
        if self.first_update_id is None:
            self.first_update_id = first
        self.final_update_id = final
        self.bids.update(bids)
        self.asks.update(asks)

    def flush(self, symbol: str, event_time: int) -> dict | None:
        """The `depthUpdate` payload for everything pending, or None if nothing changed."""
        if self.first_update_id is None:
            return None
        payload = {
            "e": "depthUpdate",
            "E": event_time,
            "s": symbol,
            "U": self.first_update_id,
            "u": self.final_update_id,
            "b": [[fmt(p), fmt(q)] for p, q in sorted(self.bids.items(), reverse=True)],
            "a": [[fmt(p), fmt(q)] for p, q in sorted(self.asks.items())],
        }
        self.first_update_id, self.bids, self.asks = None, {}, {}
        return payload


class SimulatedMarket:
    """State of one symbol: book, last trade, rolling statistics."""

    def __init__(self, symbol: str, rng: random.Random, levels: int = 50):
        start, tick, step = PROFILES.get(symbol, DEFAULT_PROFILE)
        self.symbol = symbol
        self.base_asset, self.quote_asset = split_symbol(symbol)
        self.tick, self.step = Decimal(tick), Decimal(step)
        self.levels = levels
        self._rng = rng
        price = Decimal(start)
        # About 0.002 % of the price between levels, and at least one tick.
        self.spacing = self.tick * max(1, int(price * Decimal("0.00002") / self.tick))
        self.anchor = self._on_grid(price)
        self.update_id = rng.randint(1_000_000, 9_000_000)
        self.bids: dict[Decimal, Decimal] = {}
        self.asks: dict[Decimal, Decimal] = {}
        self.fast, self.slow = Pending(), Pending()
        self.skip_next_fast = False
        self._init_statistics(price)
        self._rebuild()
        self.fast, self.slow = Pending(), Pending()  # the initial book is the snapshot, not an event

    def _init_statistics(self, price: Decimal) -> None:
        self.open_price = self.high = self.low = price
        self.last_price_text = fmt(price)
        self.last_quantity_text = fmt(self.step)
        self.volume = self.quote_volume = Decimal(0)
        self.next_trade_id = self._rng.randint(100_000, 900_000)
        self.first_trade_id = self.next_trade_id
        self.trade_count = 0

    # --- the walk ---------------------------------------------------------------------------------

    def step_book(self) -> None:
        """Move the anchor a little and update the book around it."""
        moves = round(self._rng.gauss(0, 0.8))
        floor = self.spacing * (self.levels + 2)  # keeps every bid above zero
        self.anchor = max(floor, self.anchor + moves * self.spacing)
        self._rebuild()

    def move_to(self, price: Decimal) -> None:
        """A trade printed far from the book drags the book with it on the next step."""
        self.anchor = max(self.spacing * (self.levels + 2), self._on_grid(price))

    def random_trade(self, event_time: int) -> dict:
        """A taker trade at the best bid (buyer was maker) or the best ask."""
        buyer_maker = self._rng.random() < 0.5
        price = max(self.bids) if buyer_maker else min(self.asks)
        quantity = self.step * self._rng.randint(1, 20_000)
        return self.trade(fmt(price), fmt(quantity), buyer_maker, event_time)

    def trade(self, price: str, quantity: str, buyer_maker: bool, event_time: int) -> dict:
        """Record a trade and return its `trade` payload (price and quantity printed as given)."""
        value, amount = Decimal(price), Decimal(quantity)
        trade_id = self.next_trade_id
        self.next_trade_id += 1
        self.trade_count += 1
        self.last_price_text, self.last_quantity_text = price, quantity
        self.high, self.low = max(self.high, value), min(self.low, value)
        self.volume += amount
        self.quote_volume += amount * value
        return {
            "e": "trade",
            "E": event_time,
            "s": self.symbol,
            "t": trade_id,
            "p": price,
            "q": quantity,
            "T": event_time,
            "m": buyer_maker,
            "M": True,
        }

    # --- payloads ---------------------------------------------------------------------------------

    def ticker(self, event_time: int) -> dict:
        last = Decimal(self.last_price_text)
        change = last - self.open_price
        percent = (change * 100 / self.open_price).quantize(PERCENT_PLACES)
        average = self.quote_volume / self.volume if self.volume else last
        best_bid, best_ask = max(self.bids), min(self.asks)
        return {
            "e": "24hrTicker",
            "E": event_time,
            "s": self.symbol,
            "p": fmt(change),
            "P": f"{percent:f}",
            "w": fmt(average),
            "x": fmt(self.open_price),
            "c": self.last_price_text,
            "Q": self.last_quantity_text,
            "b": fmt(best_bid),
            "B": fmt(self.bids[best_bid]),
            "a": fmt(best_ask),
            "A": fmt(self.asks[best_ask]),
            "o": fmt(self.open_price),
            "h": fmt(self.high),
            "l": fmt(self.low),
            "v": fmt(self.volume),
            "q": fmt(self.quote_volume),
            "O": event_time - DAY_MS,
            "C": event_time,
            "F": self.first_trade_id,
            "L": self.next_trade_id - 1,
            "n": self.trade_count,
        }

    def depth_snapshot(self, limit: int) -> dict:
        """The REST `/api/v3/depth` body: the current book as of `update_id`."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    def exchange_info(self) -> dict:
        return {
            "symbol": self.symbol,
            "status": "TRADING",
            "baseAsset": self.base_asset,
            "baseAssetPrecision": 8,
            "quoteAsset": self.quote_asset,
            "quotePrecision": 8,
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
            "icebergAllowed": True,
            "ocoAllowed": True,
            "isSpotTradingAllowed": True,
            "isMarginTradingAllowed": False,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": fmt(self.tick),
                    "maxPrice": "1000000.00000000",
                    "tickSize": fmt(self.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "minQty": fmt(self.step),
                    "maxQty": "9000000.00000000",
                    "stepSize": fmt(self.step),
                },
                {"filterType": "NOTIONAL", "minNotional": "5.00000000", "maxNotional": "9000000.00000000"},
            ],
            "permissions": [],
            "permissionSets": [["SPOT"]],
        }

    # --- inside -----------------------------------------------------------------------------------

    def _on_grid(self, price: Decimal) -> Decimal:
        return (price / self.spacing).to_integral_value() * self.spacing

    def _rebuild(self) -> None:
        """Bring both sides onto the grid around the anchor and record the changes as one update."""
        bid_changes = self._side_changes(self.bids, [self.anchor - self.spacing * (i + 1) for i in range(self.levels)])
        ask_changes = self._side_changes(self.asks, [self.anchor + self.spacing * (i + 1) for i in range(self.levels)])
        count = len(bid_changes) + len(ask_changes)
        first, self.update_id = self.update_id + 1, self.update_id + count
        self.fast.add(first, self.update_id, bid_changes, ask_changes)
        self.slow.add(first, self.update_id, bid_changes, ask_changes)

    def _side_changes(self, side: dict[Decimal, Decimal], target: list[Decimal]) -> dict[Decimal, Decimal]:
        wanted = set(target)
        changes = {price: Decimal(0) for price in side if price not in wanted}
        changes.update({price: self._quantity() for price in target if price not in side})
        # Resting orders come and go: a few existing levels change size (always at least one).
        kept = [price for price in target if price in side]
        for price in self._rng.sample(kept, min(len(kept), self._rng.randint(1, 3))):
            changes[price] = self._quantity()
        for price, quantity in changes.items():
            if quantity == 0:
                side.pop(price, None)
            else:
                side[price] = quantity
        return changes

    def _quantity(self) -> Decimal:
        return self.step * self._rng.randint(10, 100_000)
