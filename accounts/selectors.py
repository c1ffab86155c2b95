"""Reads: what the API lists, what the WebSocket consumer sends as snapshots, what the engine needs.

The `*_messages` / `*_message` selectors return finished wire messages (built by realtime.protocol)
for subscribe-then-snapshot; the consumer calls them through database_sync_to_async.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from django.db.models import QuerySet

from accounts import bots as bot_logic
from accounts.exceptions import NotFound
from accounts.models import Bot, CashBalance, Fill, Order, Position, RiskLimit
from accounts.portfolio import STARTING_CASH, PositionState, Valuation, value_portfolio
from marketdata.latest import last_trade_price
from marketdata.models import Symbol
from realtime import protocol

Prices = Mapping[str, Decimal | None]
MAX_LIST = 1000
DEFAULT_LIST = 100


# --- symbols -------------------------------------------------------------------------------------


def symbol_tradable(*, name: str) -> Symbol | None:
    """The enabled Symbol of that name, or None."""
    return Symbol.objects.filter(name=name, enabled=True).first()


def market_price(*, symbol: str, prices: Prices | None = None) -> Decimal | None:
    """The engine's in-memory price when given one, else the shared last trade price."""
    if prices is not None and prices.get(symbol) is not None:
        return prices[symbol]
    return last_trade_price(symbol)


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


def orders_resting(*, symbol: str) -> list[Order]:
    """Open limit orders on a symbol (candidates for paper matching; rows re-checked under lock)."""
    return list(
        Order.objects.filter(symbol=symbol, order_type=Order.Type.LIMIT, status__in=Order.OPEN_STATUSES).only(
            "id", "side", "price", "quantity", "filled_quantity", "status"
        )
    )


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


# --- portfolio -----------------------------------------------------------------------------------


def cash_amount(*, user_id: int) -> Decimal:
    amount = CashBalance.objects.filter(owner_id=user_id).values_list("amount", flat=True).first()
    return STARTING_CASH if amount is None else amount


def position_state(position: Position) -> PositionState:
    return PositionState(position.quantity, position.average_price, position.realized_pnl)


def portfolio_get(*, user_id: int, prices: Prices | None = None) -> Valuation:
    """The user's cash and open positions valued at the latest known prices."""
    positions = list(Position.objects.filter(owner_id=user_id))
    symbols = {p.symbol for p in positions if p.quantity != 0}
    known = {symbol: market_price(symbol=symbol, prices=prices) for symbol in symbols}
    return value_portfolio(cash_amount(user_id=user_id), [(p.symbol, position_state(p)) for p in positions], known)


def portfolio_fields(valuation: Valuation) -> dict:
    """The keyword arguments of protocol.portfolio / publish.publish_portfolio for a valuation."""
    return {
        "total_value": valuation.total_value,
        "positions": [p.as_dict() for p in valuation.positions],
        "cash": valuation.cash,
        "currency": valuation.currency,
        "unrealized_pnl": valuation.unrealized_pnl,
        "realized_pnl": valuation.realized_pnl,
    }


def portfolio_message(*, user_id: int) -> dict:
    """One portfolio message with the user's current valuation."""
    return protocol.portfolio(**portfolio_fields(portfolio_get(user_id=user_id)))


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


def bot_performance(*, bot: Bot, prices: Prices | None = None, now: datetime | None = None) -> bot_logic.Performance:
    fills = Fill.objects.filter(order__bot_id=bot.pk).order_by("executed_at", "id")
    history = [
        bot_logic.BotFill(side=side, quantity=quantity, price=price, executed_at=executed_at)
        for side, quantity, price, executed_at in fills.values_list("order__side", "quantity", "price", "executed_at")
    ]
    today = bot_logic.start_of_day((now or datetime.now(UTC)).astimezone(UTC))
    return bot_logic.performance(
        history, market_price=market_price(symbol=bot.symbol, prices=prices), today_start=today
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
    """One bot_status per bot of the user."""
    return [protocol.bot_status(**bot_status_fields(bot)) for bot in bot_list(user_id=user_id)]
