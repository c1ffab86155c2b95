"""Reads: what the API lists, what the WebSocket consumer sends as snapshots, what the engine needs.

The `*_messages` / `*_message` selectors return finished wire messages (built by realtime.protocol)
for subscribe-then-snapshot; the consumer calls them through database_sync_to_async.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.db.models import Max, Min, Q, QuerySet

from accounts import bots as bot_logic
from accounts import matching
from accounts.exceptions import NotFound
from accounts.models import Balance, Bot, Order, Position, RiskLimit
from accounts.money import ZERO
from accounts.portfolio import CASH_CURRENCY, STARTING_CASH, BalanceValue, PositionState, Valuation, value_portfolio
from marketdata import latest
from marketdata.assets import split_symbol
from marketdata.models import Symbol
from realtime import protocol

Prices = Mapping[str, Decimal | None]
MAX_LIST = 1000
DEFAULT_LIST = 100


# --- symbols -------------------------------------------------------------------------------------


def symbol_tradable(*, name: str) -> Symbol | None:
    """The enabled Symbol of that name, or None."""
    return Symbol.objects.enabled().filter(name=name).first()


def symbol_assets(*, name: str) -> tuple[str, str]:
    """(base, quote) of a symbol, from its row when it names them; the quote defaults to USDT."""
    row = Symbol.objects.filter(name=name).values_list("base_asset", "quote_asset").first()
    base, quote = row if row and row[0] and row[1] else split_symbol(name)
    return base or name, quote or CASH_CURRENCY


def market_price(*, symbol: str, prices: Prices | None = None) -> Decimal | None:
    """The engine's in-memory price when given one, else the shared last trade price."""
    if prices is not None and prices.get(symbol) is not None:
        return prices[symbol]
    return latest.last_trade_price(symbol)


def last_trade(*, symbol: str) -> latest.LastTrade | None:
    """The shared last trade price with its time (market orders refuse a stale one)."""
    return latest.last_trade(symbol)


def order_book(*, symbol: str) -> latest.StoredBook | None:
    """The order book the market-data worker keeps and stores for /ws/market (market orders walk it)."""
    return latest.order_book(symbol)


# --- orders --------------------------------------------------------------------------------------


def order_list(
    *, user_id: int, statuses: Iterable[str] | None = None, symbol: str | None = None, limit: int = DEFAULT_LIST
) -> QuerySet[Order]:
    """A user's orders, newest first."""
    orders = Order.objects.filter(owner_id=user_id)
    if statuses:
        orders = orders.filter(status__in=list(statuses))
    if symbol:
        orders = orders.filter(symbol=symbol.upper())
    return orders.order_by("-id")[: max(1, min(limit, MAX_LIST))]


def order_get(*, user_id: int, order_id: int) -> Order:
    order = Order.objects.filter(owner_id=user_id, pk=order_id).first()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    return order


CROSSED_PAGE = 100


def orders_reach(*, symbols: Iterable[str]) -> dict[str, matching.Reach]:
    """Per symbol with open limit orders: the highest open buy limit and the lowest open sell limit,
    in one query. A trade outside both reaches no order, so the engine skips it without reading
    candidates; a symbol missing here has no open limit order at all."""
    wanted = set(symbols)
    if not wanted:
        return {}
    return {
        row["symbol"]: matching.Reach(highest_buy=row["buy"], lowest_sell=row["sell"])
        for row in _reach_of_every_symbol().all()  # a clone: evaluated afresh
        if row["symbol"] in wanted
    }


@functools.cache
def _reach_of_every_symbol() -> QuerySet:
    # Built once and cloned at each run: the paper engine runs it many times a second, and building the
    # grouped, filtered aggregate each time (with the symbols in an IN list) cost three times running it.
    # Every symbol's: the symbols with open limit orders are few, and those asked are filtered above.
    return (
        Order.objects.filter(order_type=Order.Type.LIMIT, status__in=list(Order.OPEN_STATUSES))
        .values("symbol")
        .annotate(buy=Max("price", filter=Q(side=matching.BUY)), sell=Min("price", filter=Q(side=matching.SELL)))
        .order_by()
    )


def orders_crossed(
    *, symbol: str, side: str, price: Decimal, placed_before: datetime
) -> Iterator[matching.RestingOrder]:
    """Resting limit orders of one side that a trade at `price` reaches, best price then oldest first,
    placed before the trade; read a page at a time (index order_resting_price) as the caller goes.
    Candidates only: the fill re-checks each row under its lock."""
    crossed = Order.objects.filter(
        symbol=symbol,
        side=side,
        order_type=Order.Type.LIMIT,
        status__in=list(Order.OPEN_STATUSES),
        created_at__lt=placed_before,
    )
    if side == matching.BUY:
        crossed, ordering = crossed.filter(price__gte=price), ("-price", "id")
    else:
        crossed, ordering = crossed.filter(price__lte=price), ("price", "id")
    fields = ("id", "price", "quantity", "filled_quantity")
    offset = 0
    while True:
        page = list(crossed.order_by(*ordering).values_list(*fields)[offset : offset + CROSSED_PAGE])
        for order_id, limit, quantity, filled in page:
            yield matching.RestingOrder(order_id=order_id, side=side, price=limit, remaining=quantity - filled)
        if len(page) < CROSSED_PAGE:
            return
        offset += CROSSED_PAGE


def open_order_ids(*, user_id: int, symbol: str | None = None, bot_id: int | None = None) -> list[int]:
    orders = Order.objects.filter(owner_id=user_id, status__in=Order.OPEN_STATUSES)
    if symbol:
        orders = orders.filter(symbol=symbol)
    if bot_id is not None:
        orders = orders.filter(bot_id=bot_id)
    return list(orders.order_by("id").values_list("id", flat=True))


def order_update_fields(order: Order) -> dict:
    """The keyword arguments of protocol.order_update / publish.publish_order_update for an order."""
    fields = {
        "order_id": order.pk,
        "symbol": order.symbol,
        "side": order.side,
        "status": order.status,
        "filled_quantity": order.filled_quantity,
        "remaining_quantity": order.remaining_quantity,
        "average_price": order.average_price,
        "timestamp": protocol.iso_timestamp(order.updated_at),
        "order_type": order.order_type,  # not "type": that key is the message's own
        "quantity": order.quantity,
        "price": order.price,
        "fee": order.fee,
    }
    if order.bot_id:
        fields["bot_id"] = str(order.bot_id)
    if order.reason:
        fields["reason"] = order.reason
    return fields


def open_order_messages(*, user_id: int) -> list[dict]:
    """One order_update per open order of the user (new or partially filled), oldest first."""
    orders = Order.objects.filter(owner_id=user_id, status__in=Order.OPEN_STATUSES).order_by("id")
    return [protocol.order_update(**order_update_fields(order)) for order in orders]


def order_snapshot_messages(*, user_id: int, finished_within: float, finished_at_most: int) -> list[dict]:
    """The `orders` channel's state: every open order, and the orders that finished (filled,
    canceled, rejected) within the history window, oldest first. A client that could not resume
    still learns what became of the orders it knew."""
    since = datetime.now(UTC) - timedelta(seconds=finished_within)
    finished = (
        Order.objects.filter(owner_id=user_id, updated_at__gte=since)
        .exclude(status__in=Order.OPEN_STATUSES)
        .order_by("-updated_at", "-id")
        .values_list("id", flat=True)[:finished_at_most]
    )
    wanted = Q(status__in=Order.OPEN_STATUSES) | Q(id__in=list(finished))
    orders = Order.objects.filter(wanted, owner_id=user_id).order_by("id")
    return [protocol.order_update(**order_update_fields(order)) for order in orders]


# --- portfolio -----------------------------------------------------------------------------------


def balance_list(*, user_id: int) -> list[BalanceValue]:
    """Every asset of the user, free and locked; the quote asset at its starting amount until first used."""
    rows = {
        asset: (free, locked)
        for asset, free, locked in Balance.objects.filter(owner_id=user_id).values_list("asset", "free", "locked")
    }
    rows.setdefault(CASH_CURRENCY, (STARTING_CASH, ZERO))
    return [BalanceValue(asset, free, locked) for asset, (free, locked) in sorted(rows.items())]


def position_state(position: Position) -> PositionState:
    return PositionState(position.quantity, position.cost, position.realized_pnl, position.fees_paid)


def position_store(position: Position, state: PositionState) -> None:
    """Write a position's new state onto its locked row."""
    position.quantity, position.cost = state.quantity, state.cost
    position.average_price, position.realized_pnl, position.fees_paid = (
        state.average_price,
        state.realized_pnl,
        state.fees,
    )
    position.save(update_fields=["quantity", "cost", "average_price", "realized_pnl", "fees_paid", "updated_at"])


def portfolio_get(*, user_id: int, prices: Prices | None = None) -> Valuation:
    """The user's balances and open positions valued at the latest known prices."""
    positions = list(Position.objects.filter(owner_id=user_id))
    symbols = {p.symbol for p in positions if p.quantity != 0}
    known = {symbol: market_price(symbol=symbol, prices=prices) for symbol in symbols}
    held = balance_list(user_id=user_id)
    cash = next((b.free + b.locked for b in held if b.asset == CASH_CURRENCY), ZERO)
    return value_portfolio(cash, [(p.symbol, position_state(p)) for p in positions], known, held)


def portfolio_fields(valuation: Valuation) -> dict:
    """The keyword arguments of protocol.portfolio / publish.publish_portfolio for a valuation."""
    return {
        "total_value": valuation.total_value,
        "positions": [p.as_dict() for p in valuation.positions],
        "cash": valuation.cash,
        "currency": valuation.currency,
        "unrealized_pnl": valuation.unrealized_pnl,
        "realized_pnl": valuation.realized_pnl,
        "fees": valuation.fees,
        "balances": [b.as_dict() for b in valuation.balances],
    }


def portfolio_message(*, user_id: int) -> dict:
    """One portfolio message with the user's current valuation."""
    return protocol.portfolio(**portfolio_fields(portfolio_get(user_id=user_id)))


def symbols_with_risk_limits(*, symbols: Iterable[str]) -> set[str]:
    """Those of `symbols` that any user set a risk limit on (one query): the others have nothing to check."""
    return set(RiskLimit.objects.filter(symbol__in=list(symbols)).values_list("symbol", flat=True).distinct())


def position_holders(*, symbols: Iterable[str]) -> list[int]:
    """Users with an open position in any of the symbols."""
    return list(
        Position.objects.filter(symbol__in=list(symbols))
        .exclude(quantity=0)
        .values_list("owner_id", flat=True)
        .distinct()
        .order_by("owner_id")
    )


# --- risk ----------------------------------------------------------------------------------------


def risk_limit_list(*, user_id: int) -> QuerySet[RiskLimit]:
    return RiskLimit.objects.filter(owner_id=user_id).order_by("symbol")


def risk_limit_owners_to_check(*, symbol: str) -> list[int]:
    """Owners of limits on a symbol who hold it, or whose limit is still breached (it may re-arm)."""
    holders = Position.objects.filter(symbol=symbol).exclude(quantity=0).values("owner_id")
    limits = RiskLimit.objects.filter(symbol=symbol)
    owners = (limits.filter(owner_id__in=holders) | limits.filter(breached=True)).values_list("owner_id", flat=True)
    return sorted(set(owners))


# --- bots ----------------------------------------------------------------------------------------


def bot_list(*, user_id: int) -> QuerySet[Bot]:
    return Bot.objects.filter(owner_id=user_id).order_by("id")


def bot_get(*, user_id: int, bot_id: int) -> Bot:
    bot = Bot.objects.filter(owner_id=user_id, pk=bot_id).first()
    if bot is None:
        raise NotFound(f"bot {bot_id} not found")
    return bot


def bot_ids_running() -> list[int]:
    return list(Bot.objects.filter(status=Bot.Status.RUNNING).order_by("id").values_list("id", flat=True))


def bot_performance_state(bot: Bot) -> bot_logic.PerformanceState:
    return bot_logic.PerformanceState(
        position=PositionState(bot.position_quantity, bot.position_cost, bot.realized_pnl, bot.fees_paid),
        closing_fills=bot.closing_fills,
        winning_fills=bot.winning_fills,
        fills_day=bot.fills_day,
        fills_today=bot.fills_today,
    )


def bot_performance_store(bot: Bot, state: bot_logic.PerformanceState) -> None:
    """Write a bot's performance state onto its locked row (after a fill of one of its orders)."""
    bot.position_quantity, bot.position_cost = state.position.quantity, state.position.cost
    bot.realized_pnl, bot.fees_paid = state.position.realized_pnl, state.position.fees
    bot.closing_fills, bot.winning_fills = state.closing_fills, state.winning_fills
    bot.fills_day, bot.fills_today = state.fills_day, state.fills_today
    bot.save(update_fields=[*BOT_PERFORMANCE_FIELDS, "updated_at"])


BOT_PERFORMANCE_FIELDS = (
    "position_quantity",
    "position_cost",
    "realized_pnl",
    "fees_paid",
    "closing_fills",
    "winning_fills",
    "fills_day",
    "fills_today",
)


def bot_performance(*, bot: Bot, prices: Prices | None = None, now: datetime | None = None) -> bot_logic.Performance:
    """A bot's figures from the state its fills keep on its row (no replay of its fills)."""
    today = (now or datetime.now(UTC)).astimezone(UTC).date()
    return bot_logic.performance_report(
        bot_performance_state(bot), market_price=market_price(symbol=bot.symbol, prices=prices), today=today
    )


def bot_status_fields(bot: Bot, *, prices: Prices | None = None) -> dict:
    """The keyword arguments of protocol.bot_status / publish.publish_bot_status for a bot."""
    fields = {
        "bot_id": bot.pk,
        "name": bot.name,
        "status": bot.status,
        "performance": bot_performance(bot=bot, prices=prices).as_dict(),
        "strategy": bot.strategy,
        "symbol": bot.symbol,
    }
    if bot.status_reason:
        fields["reason"] = bot.status_reason
    return fields


def bot_status_messages(*, user_id: int) -> list[dict]:
    """One bot_status per bot of the user; each symbol's price is read once, not once per bot."""
    bots = list(bot_list(user_id=user_id))
    prices = {symbol: market_price(symbol=symbol) for symbol in {bot.symbol for bot in bots}}
    return [protocol.bot_status(**bot_status_fields(bot, prices=prices)) for bot in bots]
