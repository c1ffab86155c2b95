"""Orders: placing (validation, buying power, reservation, taking the book) and canceling.

Spot rules: a buy needs the quote asset for quantity x price plus the fee, a sell needs the base
asset; a limit order reserves that until it ends, a market order pays as it fills. Otherwise the
order is refused (InvalidInput: a 400 that says what is missing) and nothing is written.
"""

from __future__ import annotations

import logging
from decimal import Decimal

from django.db import transaction

from accounts import ledger, matching, selectors
from accounts.exceptions import InvalidInput, InvalidState, MarketUnavailable, NotFound
from accounts.ledger import Shortfall
from accounts.models import Bot, Order, Side
from accounts.money import fits_column, is_multiple, plain, quantize, wide
from accounts.services import balances, fills
from accounts.services._common import Prices, app, lock_user, positive_amount, publish_order, tradable_symbol
from marketdata.models import Symbol

logger = logging.getLogger("accounts.services")


def _validated_order(
    *, symbol: Symbol, side: str, order_type: str, quantity: Decimal, price: Decimal | None
) -> tuple[Decimal, Decimal | None]:
    if side not in Side.values:
        raise InvalidInput(f"side must be buy or sell, not {side!r}", field="side")
    if order_type not in Order.Type.values:
        raise InvalidInput(f"type must be market or limit, not {order_type!r}", field="type")
    quantity = positive_amount(quantity, field="quantity", what="quantity")
    if not is_multiple(quantity, symbol.step_size):
        raise InvalidInput(
            f"quantity must be a multiple of {symbol.name}'s step size {plain(symbol.step_size)}", field="quantity"
        )
    if order_type == Order.Type.MARKET:
        if price is not None:
            raise InvalidInput("a market order takes no price; omit it or place a limit order", field="price")
        return quantity, None
    if price is None:
        raise InvalidInput("a limit order needs a price", field="price")
    price = positive_amount(price, field="price", what="price")
    if not is_multiple(price, symbol.tick_size):
        raise InvalidInput(
            f"price must be a multiple of {symbol.name}'s tick size {plain(symbol.tick_size)}", field="price"
        )
    return quantity, price


@wide
def _check_notional(symbol: Symbol, quantity: Decimal, price: Decimal | None) -> None:
    if price is None:
        return
    value = quantity * price
    if value < symbol.min_notional:
        raise InvalidInput(
            f"order value {plain(value)} is below {symbol.name}'s minimum of {plain(symbol.min_notional)}; "
            f"increase the quantity",
            field="quantity",
        )
    if not fits_column(quantize(value)):
        raise InvalidInput("order value must be below 10^15", field="quantity")


def _check_open_orders(user_id: int) -> None:
    limit = app().max_open_orders_per_user
    count = Order.objects.filter(owner_id=user_id, status__in=Order.OPEN_STATUSES).count()
    if count >= limit:
        raise InvalidInput(
            f"you have {count} open orders, the most allowed (MAX_OPEN_ORDERS_PER_USER={limit}); "
            f"cancel some before placing another limit order"
        )


def _shortfall_message(exc: Shortfall, *, side: str, quantity: Decimal, symbol: str, price: Decimal | None) -> str:
    at = f" at {plain(price)}" if price is not None else " at market"
    return (
        f"insufficient balance: {side} {plain(quantity)} {symbol}{at} needs {plain(exc.needed)} {exc.asset} "
        f"(fees included), you have {plain(exc.available)} {exc.asset} free; missing {plain(exc.missing)} {exc.asset}"
    )


def _fresh_book(symbol: str, side: str) -> tuple[Decimal, list[matching.Level]]:
    """The last price and the book side a market order takes, or MarketUnavailable saying why not."""
    last = selectors.last_trade(symbol=symbol)
    max_age = app().max_price_age
    if last is None:
        raise MarketUnavailable(f"no market price known yet for {symbol}; try again once it trades")
    if last.age() > max_age:
        raise MarketUnavailable(
            f"the last {symbol} price is {last.age():.0f} s old (more than MAX_PRICE_AGE={max_age:g} s): "
            f"the market feed is behind; try again later or place a limit order"
        )
    book = selectors.order_book(symbol=symbol)
    if book is None:
        raise MarketUnavailable(f"no current order book for {symbol}; try again shortly or place a limit order")
    return last.price, list(book.asks if side == Side.BUY else book.bids)


@transaction.atomic
def order_place(
    *,
    user_id: int,
    symbol: str,
    side: str,
    order_type: str,
    quantity: Decimal,
    price: Decimal | None = None,
    bot_id: int | None = None,
    prices: Prices | None = None,
) -> Order:
    """Place a paper order.

    A market order takes the order book level by level at once (what the book cannot fill is
    canceled, with the reason); a limit order reserves what it may need, takes the levels of the
    book at or better than its limit at once, and rests with the rest until trades fill it.
    """
    tradable = tradable_symbol(symbol)
    quantity, price = _validated_order(
        symbol=tradable, side=side, order_type=order_type, quantity=quantity, price=price
    )
    lock_user(user_id)
    if order_type == Order.Type.MARKET:
        return _place_market(
            user_id=user_id, symbol=tradable, side=side, quantity=quantity, bot_id=bot_id, prices=prices
        )
    _check_notional(tradable, quantity, price)
    _check_open_orders(user_id)
    return _place_limit(
        user_id=user_id, symbol=tradable, side=side, quantity=quantity, price=price, bot_id=bot_id, prices=prices
    )


def _place_limit(
    *, user_id: int, symbol: Symbol, side: str, quantity: Decimal, price: Decimal, bot_id: int | None, prices
) -> Order:
    base, quote = selectors.symbol_assets(name=symbol.name)
    asset = quote if side == Side.BUY else base
    reserve = ledger.reservation(side, quantity, price, fills.reserve_rate())
    row = balances.balances_lock(user_id=user_id, assets={asset})[asset]
    try:
        funds = balances.funds_of(row).reserve(reserve)
    except Shortfall as exc:
        raise InvalidInput(
            _shortfall_message(exc, side=side, quantity=quantity, symbol=symbol.name, price=price), field="quantity"
        ) from None
    balances.balance_save(row, funds)
    order = Order.objects.create(
        owner_id=user_id,
        bot_id=bot_id,
        symbol=symbol.name,
        side=side,
        order_type=Order.Type.LIMIT,
        quantity=quantity,
        price=price,
        reserved=reserve,
    )
    publish_order(order)
    book = selectors.order_book(symbol=symbol.name)
    if book is not None:
        levels = book.asks if side == Side.BUY else book.bids
        legs = matching.walk_book(side, levels, quantity, limit=price)
        if legs:  # it crosses the book: that part takes liquidity now, as a taker
            fills.order_fill_locked(order, legs, maker=False, bot=_bot(bot_id), prices=prices)
    return order


@wide
def _place_market(*, user_id: int, symbol: Symbol, side: str, quantity: Decimal, bot_id: int | None, prices) -> Order:
    last_price, levels = _fresh_book(symbol.name, side)
    _check_notional(symbol, quantity, last_price)
    legs = matching.walk_book(side, levels, quantity)
    base, quote = selectors.symbol_assets(name=symbol.name)
    rows = balances.balances_lock(user_id=user_id, assets={base, quote})
    try:
        if side == Side.BUY:
            rate = fills.fee_rate(maker=False)
            cost = sum((ledger.buy_cost(q, p, rate) for p, q in legs), Decimal(0))
            balances.funds_of(rows[quote]).spend_free(cost)
        else:
            balances.funds_of(rows[base]).spend_free(quantity)
    except Shortfall as exc:
        raise InvalidInput(
            _shortfall_message(exc, side=side, quantity=quantity, symbol=symbol.name, price=None), field="quantity"
        ) from None
    order = Order.objects.create(
        owner_id=user_id, bot_id=bot_id, symbol=symbol.name, side=side, order_type=Order.Type.MARKET, quantity=quantity
    )
    publish_order(order)
    if legs:
        fills.order_fill_locked(order, legs, maker=False, bot=_bot(bot_id), prices=prices)
    if order.is_open:
        took = sum((q for _p, q in legs), Decimal(0))
        book_side = "asks" if side == Side.BUY else "bids"
        fills.order_end(
            order,
            Order.Status.CANCELED,
            f"the order book's {book_side} held {plain(took)} of {plain(quantity)} {symbol.name}; "
            f"the rest was canceled",
        )
    return order


def _bot(bot_id: int | None):
    """The placing bot's row (its caller already holds its lock), for its performance figures."""
    if bot_id is None:
        return None
    return Bot.objects.select_for_update().filter(pk=bot_id).first()


@transaction.atomic
def order_cancel(*, user_id: int, order_id: int, reason: str = "") -> Order:
    """Cancel one of the user's open orders, releasing its reservation; a finished order is refused."""
    order = Order.objects.select_for_update().filter(owner_id=user_id, pk=order_id).first()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    if not order.is_open:
        raise InvalidState(
            f"order {order_id} is already {order.status}; only new or partially filled orders can be canceled"
        )
    fills.order_end(order, Order.Status.CANCELED, reason)
    return order


def orders_cancel_all(*, user_id: int, symbol: str | None = None, bot_id: int | None = None) -> list[Order]:
    """Cancel every open order of the user (of one symbol, or one bot), each in its own transaction.
    An order that fills meanwhile is left filled. Returns the orders canceled."""
    if symbol is not None:
        symbol = symbol.strip().upper()
        if not Symbol.objects.filter(name=symbol).exists():
            raise InvalidInput(f"unknown symbol {symbol!r}", field="symbol")
    canceled = []
    for order_id in selectors.open_order_ids(user_id=user_id, symbol=symbol, bot_id=bot_id):
        try:
            canceled.append(order_cancel(user_id=user_id, order_id=order_id))
        except InvalidState:
            continue  # filled or canceled since we listed it
    return canceled
