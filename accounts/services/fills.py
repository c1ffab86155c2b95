"""Fills: booking what an order takes (balances, fee, position, the bot's performance), and paper
matching of resting orders against the market's trades.

A fill and a cancel both lock the order and re-check its status under the lock: whichever comes
second sees the first one's result, so an order ends either filled or canceled, never both. A fill
the engine cannot book (the user cannot pay, or an amount out of bounds) is not retried forever:
the order ends, once, with the reason, and its reservation is released.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal

from django.db import DataError, transaction

from accounts import bots as bot_logic
from accounts import ledger, matching, selectors
from accounts.exceptions import TradingError
from accounts.ledger import Shortfall
from accounts.models import Bot, Fill, Order, Position
from accounts.money import ZERO, quantize, wide
from accounts.portfolio import apply_fill
from accounts.services import _common, balances, portfolio, risk
from accounts.services._common import Prices, publish_bot, publish_order
from leadership import fence

logger = logging.getLogger("accounts.services")

# What may go wrong booking a fill that must end the order instead of being retried on every trade.
UNBOOKABLE = (Shortfall, ArithmeticError, ValueError, DataError)


def fee_rate(*, maker: bool) -> Decimal:
    app = _common.app()
    return app.maker_fee_rate if maker else app.taker_fee_rate


def reserve_rate() -> Decimal:
    """A buy limit order reserves its fee at the higher rate: it may fill as a taker or a maker."""
    app = _common.app()
    return max(app.maker_fee_rate, app.taker_fee_rate)


def order_release(order: Order) -> None:
    """Give back what an order still has reserved (it ended); the caller holds the order's lock."""
    if order.reserved <= 0:
        return
    base, quote = selectors.symbol_assets(name=order.symbol)
    asset = quote if order.side == ledger.BUY else base
    row = balances.balances_lock(user_id=order.owner_id, assets={asset})[asset]
    balances.balance_save(row, balances.funds_of(row).release(order.reserved))
    order.reserved = ZERO


def order_end(order: Order, status: str, reason: str = "") -> None:
    """End an open order (canceled or rejected), releasing its reservation; the caller holds its lock."""
    order_release(order)
    order.status = status
    order.reason = reason[:300]
    order.save(update_fields=["status", "reason", "reserved", "updated_at"])
    publish_order(order)


@wide
def _book_legs(order: Order, legs: Sequence[matching.Level], *, maker: bool, trade_id: str, now: datetime) -> list:
    """Book fills of a locked open order: balances, the order's figures, its Fill rows, the position."""
    fence.fence_check()  # a worker that lost its lease must not fill: refused in this transaction
    base, quote = selectors.symbol_assets(name=order.symbol)
    rows = balances.balances_lock(user_id=order.owner_id, assets={base, quote})
    quote_funds, base_funds = balances.funds_of(rows[quote]), balances.funds_of(rows[base])
    position, _ = Position.objects.select_for_update().get_or_create(owner_id=order.owner_id, symbol=order.symbol)
    state = selectors.position_state(position)
    rate = fee_rate(maker=maker)
    booked = []
    for price, quantity in legs:
        settled = ledger.settle_fill(
            side=order.side,
            quantity=quantity,
            price=price,
            rate=rate,
            reserved=order.reserved,
            quote=quote_funds,
            base=base_funds,
        )
        quote_funds, base_funds, order.reserved = settled.quote, settled.base, settled.reserved_left
        state = apply_fill(state, side=order.side, quantity=quantity, price=price, fee=settled.fee).position
        previous = order.filled_quantity * (order.average_price or ZERO)
        order.filled_quantity += quantity
        order.average_price = quantize((previous + quantity * price) / order.filled_quantity)
        order.fee += settled.fee
        booked.append(
            Fill(
                order=order,
                price=price,
                quantity=quantity,
                fee=settled.fee,
                is_maker=maker,
                executed_at=now,
                trade_id=trade_id[:40],
            )
        )
    balances.balance_save(rows[quote], quote_funds)
    balances.balance_save(rows[base], base_funds)
    selectors.position_store(position, state)
    return Fill.objects.bulk_create(booked)


def _record_bot_fills(bot: Bot, order: Order, fills: list[Fill]) -> None:
    state = selectors.bot_performance_state(bot)
    for fill in fills:
        state = bot_logic.performance_apply(
            state,
            bot_logic.BotFill(
                side=order.side, quantity=fill.quantity, price=fill.price, executed_at=fill.executed_at, fee=fill.fee
            ),
        )
    selectors.bot_performance_store(bot, state)


def order_fill_locked(
    order: Order,
    legs: Sequence[matching.Level],
    *,
    maker: bool,
    bot: Bot | None = None,
    trade_id: str = "",
    prices: Prices | None = None,
    now: datetime | None = None,
) -> list[Fill]:
    """Fill a locked open order with `legs` ((price, quantity), in order) and publish what changed.

    The caller holds the order's lock (and its bot's, first). When the fill cannot be booked, the
    order ends with the reason instead (rejected if nothing had filled, canceled otherwise).
    """
    legs = [(price, quantity) for price, quantity in legs if quantity > 0]
    if not legs:
        return []
    if any(price <= 0 for price, _quantity in legs):
        raise ValueError("a fill needs a positive price")
    if sum(q for _p, q in legs) > order.remaining_quantity:
        raise ValueError("fills beyond the order's remaining quantity")
    moment = now or datetime.now(UTC)
    snapshot = {f: getattr(order, f) for f in ("filled_quantity", "average_price", "fee", "reserved")}
    try:
        with transaction.atomic():
            fills = _book_legs(order, legs, maker=maker, trade_id=str(trade_id), now=moment)
    except UNBOOKABLE as exc:
        for name, value in snapshot.items():
            setattr(order, name, value)
        status = Order.Status.REJECTED if order.filled_quantity == 0 else Order.Status.CANCELED
        order_end(order, status, f"could not be filled: {exc}")
        logger.info("order %s ended: fill could not be booked (%s)", order.pk, exc)
        return []
    order.status = Order.Status.FILLED if order.filled_quantity >= order.quantity else Order.Status.PARTIALLY_FILLED
    if order.status == Order.Status.FILLED:
        order_release(order)  # what the reservation held beyond the fills' cost
    order.save(update_fields=["filled_quantity", "average_price", "fee", "reserved", "status", "updated_at"])
    publish_order(order)
    _after_fill(order, fills, bot=bot, prices=prices, last=legs[-1][0])
    return fills


def _after_fill(order: Order, fills: list[Fill], *, bot: Bot | None, prices: Prices | None, last: Decimal) -> None:
    mark = selectors.market_price(symbol=order.symbol, prices=prices) or last
    marks = {**(prices or {}), order.symbol: mark}
    if bot is not None:
        _record_bot_fills(bot, order, fills)
        if order.status == Order.Status.FILLED:
            _grid_replace(bot, order, prices=marks)
        publish_bot(bot, prices=marks)
    portfolio.portfolio_publish(user_id=order.owner_id, prices=marks)
    risk.risk_limit_check(user_id=order.owner_id, symbol=order.symbol, price=mark)


def _grid_replace(bot: Bot, order: Order, *, prices: Prices) -> None:
    """A running grid bot puts the opposite order one level away when one of its orders fills."""
    if bot.strategy != Bot.Strategy.GRID or bot.status != Bot.Status.RUNNING or order.price is None:
        return
    from accounts.services import bots as bot_services  # bots places orders, which fill: a cycle by design

    bot_services.bot_grid_counter(bot=bot, side=order.side, price=order.price, prices=prices)


@transaction.atomic
def order_fill(
    *,
    order_id: int,
    price: Decimal,
    quantity: Decimal | None = None,
    trade_id: str = "",
    prices: Prices | None = None,
    now: datetime | None = None,
    maker: bool = True,
) -> Fill | None:
    """Fill an open order (all of what remains, or `quantity` of it) at `price`.

    Returns None, changing nothing, if the order is no longer open: that is how a fill that lost
    the race against a cancel (or another fill) ends. None too when the fill could not be booked
    (the order then ended with the reason).
    """
    bot_id = Order.objects.filter(pk=order_id).values_list("bot_id", flat=True).first()
    bot = Bot.objects.select_for_update().filter(pk=bot_id).first() if bot_id else None
    if bot is not None:
        _common.lock_user(bot.owner_id)  # a grid bot places its next order in this transaction
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None or not order.is_open:
        logger.debug("fill of order %s skipped: no longer open", order_id)
        return None
    remaining = order.remaining_quantity
    filled = remaining if quantity is None else min(quantity, remaining)
    if filled <= 0 or price <= 0:
        raise ValueError("a fill needs a positive quantity and price")
    fills = order_fill_locked(order, [(price, filled)], maker=maker, bot=bot, trade_id=trade_id, prices=prices, now=now)
    return fills[0] if fills else None


# --- paper matching ------------------------------------------------------------------------------


def orders_match_trade(*, symbol: str, trade: matching.Trade, prices: Prices | None = None) -> list[Fill]:
    """Fill the resting limit orders one market trade reached: on each side, best price then oldest
    first, only orders placed before the trade printed, up to the trade's quantity in all. Each
    order in its own transaction (one order's failure does not undo another's fill)."""
    return _match_sides(symbol, trade, prices, (ledger.BUY, ledger.SELL))


def _match_sides(symbol: str, trade: matching.Trade, prices: Prices | None, sides: tuple[str, ...]) -> list[Fill]:
    fills = []
    for side in sides:
        candidates = selectors.orders_crossed(symbol=symbol, side=side, price=trade.price, placed_before=trade.time)
        for match in matching.allocate(_enough(candidates, trade.quantity), trade):
            try:
                fill = order_fill(
                    order_id=match.order_id,
                    price=match.price,
                    quantity=match.quantity,
                    trade_id=trade.trade_id,
                    prices=prices,
                    now=trade.time,
                )
            except (TradingError, *UNBOOKABLE):
                logger.exception("paper fill of order %s failed", match.order_id)
                continue
            if fill is not None:
                fills.append(fill)
    return fills


def _enough(candidates, quantity: Decimal) -> list[matching.RestingOrder]:
    """Read candidates (best first) only until they cover the trade's quantity."""
    taken, covered = [], ZERO
    for order in candidates:
        taken.append(order)
        covered += order.remaining
        if covered >= quantity:
            break
    return taken


def orders_match_trades(*, symbol: str, trades: Sequence[matching.Trade], prices: Prices | None = None) -> list[Fill]:
    """Match several trades of one symbol, in the order they printed."""
    return orders_match_many(trades={symbol: trades}, prices=prices)


def orders_match_many(*, trades: Mapping[str, Iterable[matching.Trade]], prices: Prices | None = None) -> list[Fill]:
    """Match the trades of several symbols, each symbol's in the order they printed.

    The feed brings tens of trades a second per symbol and most reach no order: one query for the
    best open limit of each side of every symbol, then candidates are read only for the sides a
    trade crosses, and a symbol without open limit orders costs nothing more. A symbol's reach is
    read again after a fill (a grid bot places its next order with it).
    """
    fills = []
    reaches = selectors.orders_reach(symbols=trades)
    for symbol, reach in reaches.items():
        for trade in trades[symbol]:
            sides = reach.sides(trade.price)
            if not sides:
                continue
            try:
                found = _match_sides(symbol, trade, prices, sides)
            except Exception:
                logger.exception("paper matching of a %s trade failed", symbol)
                found = None  # some of it may have been booked
            if found != []:
                fills.extend(found or ())
                reach = selectors.orders_reach(symbols=[symbol]).get(symbol, matching.Reach(None, None))
    return fills
