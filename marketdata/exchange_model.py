"""The local exchange's market model: a Decimal random walk with a consistent order book, its trades,
candles and rolling statistics. Pure (no sockets, no clock: every time is passed in).

The server (exchange_server.py) steps each market and sends what it returns, and answers REST from
the same state, so klines, tickers, trades and books always agree. The book lives on a grid
of `levels` prices per side around an anchor that walks; every step changes at least one level,
and update ids grow by one per changed level, strictly consecutive across events and the REST
snapshot, so Binance's local order book procedure syncs against it exactly.
"""

from __future__ import annotations

import random
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
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


# --- candles (klines) -----------------------------------------------------------------------------------

SECOND_MS, MINUTE_MS = 1_000, 60_000
WEEK_MS = 7 * DAY_MS
MONDAY_MS = 4 * DAY_MS  # 1970-01-05, a Monday: Binance's weeks start on Monday 00:00 UTC
KEEP_SECONDS = 1_000  # 1 s candles kept (the most a 1s klines request returns)
KEEP_MINUTES = 31 * 24 * 60  # 1 m candles kept: a month of history, enough for every interval's last candle
TRADES_KEPT = 1_000  # recent trades kept for /api/v3/trades and /api/v3/aggTrades
AVERAGE_MINUTES = 5  # /api/v3/avgPrice's window
INTERVALS: dict[str, int] = {
    "1s": SECOND_MS,
    **{f"{n}m": n * MINUTE_MS for n in (1, 3, 5, 15, 30)},
    **{f"{n}h": n * 3_600_000 for n in (1, 2, 4, 6, 8, 12)},
    "1d": DAY_MS,
    "3d": 3 * DAY_MS,
    "1w": WEEK_MS,
    "1M": 0,  # calendar months
}


def bucket_start(interval: str, time_ms: int) -> int:
    """The open time of the `interval` candle holding `time_ms` (Binance's UTC boundaries)."""
    if interval == "1M":
        moment = datetime.fromtimestamp(time_ms / 1000, UTC)
        return int(datetime(moment.year, moment.month, 1, tzinfo=UTC).timestamp() * 1000)
    width = INTERVALS[interval]
    offset = MONDAY_MS if interval == "1w" else 0
    return time_ms - (time_ms - offset) % width


def bucket_end(interval: str, start_ms: int) -> int:
    """The close time (inclusive, as Binance prints it) of the candle opening at `start_ms`."""
    if interval == "1M":
        moment = datetime.fromtimestamp(start_ms / 1000, UTC)
        year, month = (moment.year + 1, 1) if moment.month == 12 else (moment.year, moment.month + 1)
        return int(datetime(year, month, 1, tzinfo=UTC).timestamp() * 1000) - 1
    return start_ms + INTERVALS[interval] - 1


@dataclass(frozen=True)
class Trade:
    id: int
    agg_id: int
    price: str  # printed as traded
    quantity: str
    time: int
    buyer_maker: bool


@dataclass
class Candle:
    """Trades of one time bucket; also what a window of buckets sums to (ticker, larger intervals)."""

    open_time: int
    open: Decimal
    high: Decimal
    low: Decimal
    close: Decimal
    volume: Decimal = Decimal(0)
    quote_volume: Decimal = Decimal(0)
    taker_buy_volume: Decimal = Decimal(0)
    taker_buy_quote_volume: Decimal = Decimal(0)
    count: int = 0
    first_id: int = -1
    last_id: int = -1

    @classmethod
    def empty(cls, open_time: int, price: Decimal) -> Candle:
        """A bucket without trades: Binance prints the previous close four times and zero volume."""
        return cls(open_time, price, price, price, price)

    def add(self, trade: Trade) -> None:
        price, quantity = Decimal(trade.price), Decimal(trade.quantity)
        if self.count == 0:
            self.open = self.high = self.low = price
            self.first_id = trade.id
        self.high, self.low, self.close = max(self.high, price), min(self.low, price), price
        self.volume += quantity
        self.quote_volume += price * quantity
        if not trade.buyer_maker:  # the taker bought
            self.taker_buy_volume += quantity
            self.taker_buy_quote_volume += price * quantity
        self.count += 1
        self.last_id = trade.id

    def absorb(self, other: Candle) -> None:
        """Add a later bucket's trades to this one (a bucket without trades changes nothing)."""
        if other.count == 0:
            return
        if self.count == 0:
            self.open, self.high, self.low, self.first_id = other.open, other.high, other.low, other.first_id
        self.high, self.low, self.close = max(self.high, other.high), min(self.low, other.low), other.close
        self.volume += other.volume
        self.quote_volume += other.quote_volume
        self.taker_buy_volume += other.taker_buy_volume
        self.taker_buy_quote_volume += other.taker_buy_quote_volume
        self.count += other.count
        self.last_id = other.last_id


def _bucket_candles(base: list[Candle], interval: str) -> list[Candle]:
    """Base candles (in time order) merged into `interval` buckets, gaps filled with empty candles."""
    merged: list[Candle] = []
    for candle in base:
        start = bucket_start(interval, candle.open_time)
        while merged and merged[-1].open_time != start and bucket_end(interval, merged[-1].open_time) + 1 < start:
            gap = bucket_end(interval, merged[-1].open_time) + 1
            merged.append(Candle.empty(gap, merged[-1].close))
        if not merged or merged[-1].open_time != start:
            merged.append(Candle.empty(start, merged[-1].close if merged else candle.open))
        merged[-1].absorb(candle)
    return merged


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
    """State of one symbol: book, trades, candles; every payload the server sends is built here."""

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
        self._init_trades(price)
        self._rebuild()
        self.fast, self.slow = Pending(), Pending()  # the initial book is the snapshot, not an event

    def _init_trades(self, price: Decimal) -> None:
        self.start_price = price
        self.last_price_text = fmt(price)
        self.last_quantity_text = fmt(self.step)
        self.next_trade_id = self._rng.randint(100_000, 900_000)
        self.next_agg_id = self._rng.randint(10_000, 90_000)
        self.trade_count = 0
        self.trades: deque[Trade] = deque(maxlen=TRADES_KEPT)
        self.seconds: dict[int, Candle] = {}  # open time -> 1 s candle, oldest first
        self.minutes: dict[int, Candle] = {}  # open time -> 1 m candle, oldest first

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
        """Record a trade and return its `trade` payload (price and quantity printed as given).

        Each trade fills one taker order against one maker, so it is also its own aggregate trade.
        """
        trade = Trade(self.next_trade_id, self.next_agg_id, price, quantity, event_time, buyer_maker)
        self.next_trade_id += 1
        self.next_agg_id += 1
        self.trade_count += 1
        self.last_price_text, self.last_quantity_text = price, quantity
        self.trades.append(trade)
        _add_to_candles(self.seconds, bucket_start("1s", event_time), trade, KEEP_SECONDS)
        _add_to_candles(self.minutes, bucket_start("1m", event_time), trade, KEEP_MINUTES)
        return {
            "e": "trade",
            "E": event_time,
            "s": self.symbol,
            "t": trade.id,
            "p": price,
            "q": quantity,
            "T": event_time,
            "m": buyer_maker,
            "M": True,
        }

    @property
    def last_trade(self) -> Trade | None:
        return self.trades[-1] if self.trades else None

    # --- statistics -------------------------------------------------------------------------------

    def window(self, now: int, minutes: int = 24 * 60) -> Candle:
        """The trades of the last `minutes` (whole minutes, as Binance's rolling windows), summed.

        Without trades in the window: the last price four times and zero volume.
        """
        return self._since(self.minutes, bucket_start("1m", now) - (minutes - 1) * MINUTE_MS)

    def open_candle(self, interval: str, now: int) -> Candle:
        """The `interval` candle holding `now`, so far (what the kline stream sends)."""
        return self._since(self.seconds if interval == "1s" else self.minutes, bucket_start(interval, now))

    def _since(self, candles: dict[int, Candle], since: int) -> Candle:
        """The base candles opening at `since` or later, summed; the last price when there are none."""
        inside = []
        for open_time, candle in reversed(candles.items()):
            if open_time < since:
                break
            inside.append(candle)
        total = Candle.empty(since, Decimal(self.last_price_text))
        for candle in reversed(inside):
            total.absorb(candle)
        return total

    def klines(self, interval: str, now: int, start: int | None, end: int | None, limit: int) -> list[Candle]:
        """Candles of `interval` from the market's own trades, the one holding `now` last (open)."""
        base = self.seconds if interval == "1s" else self.minutes
        candles = _bucket_candles(list(base.values()), interval)
        while candles and candles[-1].open_time < bucket_start(interval, now):
            candles.append(Candle.empty(bucket_end(interval, candles[-1].open_time) + 1, candles[-1].close))
        chosen = [c for c in candles if (start is None or c.open_time >= start) and (end is None or c.open_time <= end)]
        return chosen[:limit] if start is not None else chosen[-limit:]

    # --- payloads ---------------------------------------------------------------------------------

    def ticker(self, event_time: int) -> dict:
        """The `24hrTicker` stream payload: the rolling 24 h window, the same figures as /ticker/24hr."""
        day = self.window(event_time)
        change = day.close - day.open
        percent = (change * 100 / day.open).quantize(PERCENT_PLACES) if day.open else Decimal(0)
        average = day.quote_volume / day.volume if day.volume else day.close
        best_bid, best_ask = max(self.bids), min(self.asks)
        return {
            "e": "24hrTicker",
            "E": event_time,
            "s": self.symbol,
            "p": fmt(change),
            "P": f"{percent:f}",
            "w": fmt(average),
            "x": fmt(self._price_before(day)),
            "c": self.last_price_text,
            "Q": self.last_quantity_text,
            "b": fmt(best_bid),
            "B": fmt(self.bids[best_bid]),
            "a": fmt(best_ask),
            "A": fmt(self.asks[best_ask]),
            "o": fmt(day.open),
            "h": fmt(day.high),
            "l": fmt(day.low),
            "v": fmt(day.volume),
            "q": fmt(day.quote_volume),
            "O": event_time - DAY_MS,
            "C": event_time,
            "F": day.first_id,
            "L": day.last_id,
            "n": day.count,
        }

    def mini_ticker(self, event_time: int) -> dict:
        full = self.ticker(event_time)
        return {"e": "24hrMiniTicker", **{k: full[k] for k in ("E", "s", "c", "o", "h", "l", "v", "q")}}

    def book_ticker(self) -> dict:
        """The `<symbol>@bookTicker` payload: best bid and ask as of `update_id`."""
        best_bid, best_ask = max(self.bids), min(self.asks)
        return {
            "u": self.update_id,
            "s": self.symbol,
            "b": fmt(best_bid),
            "B": fmt(self.bids[best_bid]),
            "a": fmt(best_ask),
            "A": fmt(self.asks[best_ask]),
        }

    def agg_trade(self, trade: Trade) -> dict:
        """The `aggTrade` stream payload of one recorded trade."""
        return {"e": "aggTrade", "E": trade.time, "s": self.symbol, **_agg_fields(trade)}

    def kline_event(self, interval: str, event_time: int) -> dict:
        """The `kline` stream payload: the open candle of `interval`."""
        candle = self.open_candle(interval, event_time)
        return {
            "e": "kline",
            "E": event_time,
            "s": self.symbol,
            "k": {
                "t": candle.open_time,
                "T": bucket_end(interval, candle.open_time),
                "s": self.symbol,
                "i": interval,
                "f": candle.first_id,
                "L": candle.last_id,
                "o": fmt(candle.open),
                "c": fmt(candle.close),
                "h": fmt(candle.high),
                "l": fmt(candle.low),
                "v": fmt(candle.volume),
                "n": candle.count,
                "x": bucket_end(interval, candle.open_time) < event_time,
                "q": fmt(candle.quote_volume),
                "V": fmt(candle.taker_buy_volume),
                "Q": fmt(candle.taker_buy_quote_volume),
                "B": "0",
            },
        }

    def depth_snapshot(self, limit: int) -> dict:
        """The REST `/api/v3/depth` body, and the partial depth stream payload: the book as of `update_id`."""
        bids = sorted(self.bids.items(), reverse=True)[:limit]
        asks = sorted(self.asks.items())[:limit]
        return {
            "lastUpdateId": self.update_id,
            "bids": [[fmt(p), fmt(q)] for p, q in bids],
            "asks": [[fmt(p), fmt(q)] for p, q in asks],
        }

    # --- REST bodies ------------------------------------------------------------------------------

    def rest_ticker(self, now: int, mini: bool = False) -> dict:
        """`/api/v3/ticker/24hr` for this symbol (FULL or MINI), from the stream ticker's figures."""
        t = self.ticker(now)
        body = {"symbol": self.symbol}
        if not mini:
            body |= {"priceChange": t["p"], "priceChangePercent": t["P"], "weightedAvgPrice": t["w"]}
            body |= {"prevClosePrice": t["x"]}
        body |= {"lastPrice": t["c"]}
        if not mini:
            body |= {"lastQty": t["Q"], "bidPrice": t["b"], "bidQty": t["B"], "askPrice": t["a"], "askQty": t["A"]}
        body |= {"openPrice": t["o"], "highPrice": t["h"], "lowPrice": t["l"], "volume": t["v"]}
        body |= {"quoteVolume": t["q"], "openTime": t["O"], "closeTime": t["C"]}
        return body | {"firstId": t["F"], "lastId": t["L"], "count": t["n"]}

    def rest_trades(self, limit: int) -> list[dict]:
        """`/api/v3/trades`: the most recent trades, oldest first."""
        return [
            {
                "id": t.id,
                "price": t.price,
                "qty": t.quantity,
                "quoteQty": fmt(Decimal(t.price) * Decimal(t.quantity)),
                "time": t.time,
                "isBuyerMaker": t.buyer_maker,
                "isBestMatch": True,
            }
            for t in list(self.trades)[-limit:]
        ]

    def rest_agg_trades(self, from_id: int | None, start: int | None, end: int | None, limit: int) -> list[dict]:
        """`/api/v3/aggTrades`: from an aggregate id, or in a time range, or the most recent."""
        trades = list(self.trades)
        if from_id is not None:
            return [_agg_fields(t) for t in trades if t.agg_id >= from_id][:limit]
        chosen = [t for t in trades if (start is None or t.time >= start) and (end is None or t.time <= end)]
        chosen = chosen[:limit] if start is not None else chosen[-limit:]
        return [_agg_fields(t) for t in chosen]

    def rest_klines(self, interval: str, now: int, start: int | None, end: int | None, limit: int) -> list[list]:
        return [
            [
                c.open_time,
                fmt(c.open),
                fmt(c.high),
                fmt(c.low),
                fmt(c.close),
                fmt(c.volume),
                bucket_end(interval, c.open_time),
                fmt(c.quote_volume),
                c.count,
                fmt(c.taker_buy_volume),
                fmt(c.taker_buy_quote_volume),
                "0",
            ]
            for c in self.klines(interval, now, start, end, limit)
        ]

    def rest_avg_price(self, now: int) -> dict:
        """`/api/v3/avgPrice`: the volume-weighted price of the last 5 minutes' trades."""
        recent = self.window(now, AVERAGE_MINUTES)
        price = recent.quote_volume / recent.volume if recent.volume else recent.close
        last = self.last_trade
        return {"mins": AVERAGE_MINUTES, "price": fmt(price), "closeTime": last.time if last else now}

    def rest_price(self) -> dict:
        return {"symbol": self.symbol, "price": self.last_price_text}

    def rest_book_ticker(self) -> dict:
        book = self.book_ticker()
        return {"symbol": self.symbol, "bidPrice": book["b"], "bidQty": book["B"], "askPrice": book["a"]} | {
            "askQty": book["A"]
        }

    def _price_before(self, day: Candle) -> Decimal:
        """The last price before the window opened (Binance's prevClosePrice): the open when unknown."""
        for open_time, candle in reversed(self.minutes.items()):
            if open_time < day.open_time:
                return candle.close
        return day.open if day.count else self.start_price

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


def _add_to_candles(candles: dict[int, Candle], open_time: int, trade: Trade, keep: int) -> None:
    candle = candles.get(open_time)
    if candle is None:
        candle = candles[open_time] = Candle.empty(open_time, Decimal(trade.price))
        while len(candles) > keep:
            del candles[next(iter(candles))]
    candle.add(trade)


def _agg_fields(trade: Trade) -> dict:
    return {
        "a": trade.agg_id,
        "p": trade.price,
        "q": trade.quantity,
        "f": trade.id,
        "l": trade.id,
        "T": trade.time,
        "m": trade.buyer_maker,
        "M": True,
    }
