"""Writes: placing, filling and canceling orders, bots, risk limits, and the events they cause.

Every service is keyword-only and atomic. Rows that two writers can reach at once are locked with
select_for_update, always in the same order (order -> cash -> position -> risk limit; a bot before
the orders it places) so writers queue instead of deadlocking. A fill and a cancel both lock the
order and re-check its status under the lock: whichever comes second sees the first one's result,
so an order ends either filled or canceled, never both. Events a user should see are published to
that user only, with transaction.on_commit, so nobody hears of a change that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal

from django.db import transaction

from accounts import bots as bot_logic
from accounts import matching, risk, selectors
from accounts.exceptions import InvalidInput, InvalidState, NotFound
from accounts.models import Bot, CashBalance, Fill, Order, Position, RiskLimit, Side
from accounts.money import ZERO, fits_column, is_multiple, plain, quantize
from accounts.portfolio import apply_fill, notional
from leadership import fence
from marketdata.models import Symbol
from realtime import publish

logger = logging.getLogger(__name__)

Prices = Mapping[str, Decimal | None]


def _on_commit(callback: Callable[[], None]) -> None:
    """Publish after the commit; a failed publish is logged and never undoes the trade."""
    transaction.on_commit(callback, robust=True)


def _publish_order(order: Order) -> None:
    fields = selectors.order_update_fields(order)  # taken now: the row may change again in this transaction
    _on_commit(lambda: publish.publish_order_update(order.owner_id, **fields))


def _publish_bot(bot: Bot, *, prices: Prices | None = None) -> None:
    fields = selectors.bot_status_fields(bot, prices=prices)
    _on_commit(lambda: publish.publish_bot_status(bot.owner_id, **fields))


# --- validation ----------------------------------------------------------------------------------


def _tradable_symbol(name: object) -> Symbol:
    text = name.strip().upper() if isinstance(name, str) else ""
    symbol = selectors.symbol_tradable(name=text) if text else None
    if symbol is None:
        tradable = ", ".join(Symbol.objects.filter(enabled=True).values_list("name", flat=True)) or "none"
        raise InvalidInput(f"unknown or disabled symbol {name!r}; tradable symbols: {tradable}", field="symbol")
    return symbol


def _positive_amount(value: object, *, field: str, what: str) -> Decimal:
    if not isinstance(value, Decimal) or not value.is_finite():
        raise InvalidInput(f"{what} must be a decimal number", field=field)
    if value <= 0:
        raise InvalidInput(f"{what} must be greater than 0", field=field)
    if not fits_column(value):
        raise InvalidInput(f"{what} must be below 10^15 with at most 12 decimal places", field=field)
    return value


def _validated_order(
    *, symbol: Symbol, side: str, order_type: str, quantity: Decimal, price: Decimal | None
) -> tuple[Decimal, Decimal | None]:
    if side not in Side.values:
        raise InvalidInput(f"side must be buy or sell, not {side!r}", field="side")
    if order_type not in Order.Type.values:
        raise InvalidInput(f"type must be market or limit, not {order_type!r}", field="type")
    quantity = _positive_amount(quantity, field="quantity", what="quantity")
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
    price = _positive_amount(price, field="price", what="price")
    if not is_multiple(price, symbol.tick_size):
        raise InvalidInput(
            f"price must be a multiple of {symbol.name}'s tick size {plain(symbol.tick_size)}", field="price"
        )
    return quantity, price


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


# --- orders --------------------------------------------------------------------------------------


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
    """Place a paper order. Market orders fill at once at the last trade price, or are rejected
    (status rejected, with a reason) while no price is known; a limit order that already crosses the
    last price fills at once at that price; any other limit order rests until a trade reaches it.
    """
    tradable = _tradable_symbol(symbol)
    quantity, price = _validated_order(
        symbol=tradable, side=side, order_type=order_type, quantity=quantity, price=price
    )
    last_price = selectors.market_price(symbol=tradable.name, prices=prices)
    _check_notional(tradable, quantity, price if price is not None else last_price)
    order = Order.objects.create(
        owner_id=user_id,
        bot_id=bot_id,
        symbol=tradable.name,
        side=side,
        order_type=order_type,
        quantity=quantity,
        price=price,
    )
    if order_type == Order.Type.MARKET and last_price is None:
        order.status = Order.Status.REJECTED
        order.reason = f"no market price known yet for {tradable.name}"
        order.save(update_fields=["status", "reason", "updated_at"])
        _publish_order(order)
        logger.info("order %s rejected: no price for %s", order.pk, tradable.name)
        return order
    _publish_order(order)
    fill_price = matching.immediate_price(order_type, side, price, last_price)
    if fill_price is not None:
        order_fill(order_id=order.pk, price=fill_price, prices=prices)
        order.refresh_from_db()
    return order


@transaction.atomic
def order_cancel(*, user_id: int, order_id: int) -> Order:
    """Cancel one of the user's open orders; a finished order is refused and left as it is."""
    order = Order.objects.select_for_update().filter(owner_id=user_id, pk=order_id).first()
    if order is None:
        raise NotFound(f"order {order_id} not found")
    if not order.is_open:
        raise InvalidState(
            f"order {order_id} is already {order.status}; only new or partially filled orders can be canceled"
        )
    order.status = Order.Status.CANCELED
    order.save(update_fields=["status", "updated_at"])
    _publish_order(order)
    return order


@transaction.atomic
def order_fill(
    *,
    order_id: int,
    price: Decimal,
    quantity: Decimal | None = None,
    trade_id: str = "",
    prices: Prices | None = None,
    now: datetime | None = None,
) -> Fill | None:
    """Fill an open order (all of what remains, or `quantity` of it) at `price`.

    Returns None, changing nothing, if the order is no longer open: that is how a fill that lost
    the race against a cancel (or another fill) ends.
    """
    order = Order.objects.select_for_update().filter(pk=order_id).first()
    if order is None or not order.is_open:
        logger.debug("fill of order %s skipped: no longer open", order_id)
        return None
    remaining = order.remaining_quantity
    filled = remaining if quantity is None else min(quantity, remaining)
    if filled <= 0 or price <= 0:
        raise ValueError("a fill needs a positive quantity and price")
    fence.fence_check()  # a worker that lost its lease must not fill: refused in this transaction
    fill = Fill.objects.create(
        order=order, price=price, quantity=filled, executed_at=now or datetime.now(UTC), trade_id=str(trade_id)[:40]
    )
    total = order.filled_quantity + filled
    previous_value = order.filled_quantity * (order.average_price or ZERO)
    order.average_price = quantize((previous_value + filled * price) / total)
    order.filled_quantity = total
    order.status = Order.Status.FILLED if total >= order.quantity else Order.Status.PARTIALLY_FILLED
    order.save(update_fields=["average_price", "filled_quantity", "status", "updated_at"])
    _publish_order(order)

    _book_fill(order, quantity=filled, price=price)
    mark = selectors.market_price(symbol=order.symbol, prices=prices) or price
    marks = {**(prices or {}), order.symbol: mark}
    portfolio_publish(user_id=order.owner_id, prices=marks)
    risk_limit_check(user_id=order.owner_id, symbol=order.symbol, price=mark)
    if order.bot_id:
        bot = Bot.objects.filter(pk=order.bot_id).first()
        if bot is not None:
            _publish_bot(bot, prices=marks)
    return fill


def _book_fill(order: Order, *, quantity: Decimal, price: Decimal) -> None:
    """Move cash and the position for one fill (the caller holds the order's lock)."""
    cash, _ = CashBalance.objects.select_for_update().get_or_create(owner_id=order.owner_id)
    position, _ = Position.objects.select_for_update().get_or_create(owner_id=order.owner_id, symbol=order.symbol)
    result = apply_fill(selectors.position_state(position), side=order.side, quantity=quantity, price=price)
    cash.amount = quantize(cash.amount + result.cash_delta)
    cash.save(update_fields=["amount", "updated_at"])
    position.quantity = result.position.quantity
    position.average_price = result.position.average_price
    position.realized_pnl = result.position.realized_pnl
    position.save(update_fields=["quantity", "average_price", "realized_pnl", "updated_at"])


def orders_match_trades(*, symbol: str, low: Decimal, high: Decimal, prices: Prices | None = None) -> list[Fill]:
    """Fill the resting limit orders that trades between low and high reached, each in its own
    transaction (one order's failure does not undo another's fill)."""
    candidates = [
        matching.RestingOrder(order_id=o.pk, side=o.side, price=o.price, remaining=o.quantity - o.filled_quantity)
        for o in selectors.orders_resting(symbol=symbol)
    ]
    fills = []
    for match in matching.match_resting(candidates, matching.PriceRange(low, high)):
        try:
            fill = order_fill(order_id=match.order_id, price=match.price, quantity=match.quantity, prices=prices)
        except Exception:
            logger.exception("paper fill of order %s failed", match.order_id)
            continue
        if fill is not None:
            fills.append(fill)
    return fills


# --- portfolio and risk --------------------------------------------------------------------------


def portfolio_publish(*, user_id: int, prices: Prices | None = None) -> None:
    """Send the user's current valuation (after a fill: once that fill is committed)."""
    fields = selectors.portfolio_fields(selectors.portfolio_get(user_id=user_id, prices=prices))
    _on_commit(lambda: publish.publish_portfolio(user_id, **fields))


def portfolios_publish(*, user_ids: list[int], prices: Prices) -> None:
    """Revalue several users' portfolios at new prices (the engine throttles how often)."""
    for user_id in user_ids:
        try:
            portfolio_publish(user_id=user_id, prices=prices)
        except Exception:
            logger.exception("portfolio revaluation for user %s failed", user_id)


@transaction.atomic
def risk_limit_check(*, user_id: int, symbol: str, price: Decimal) -> bool:
    """Compare the user's position in a symbol with its limit at `price`; alert on a crossing.

    The `breached` flag is read and written under the limit's row lock, so two checks running at
    once (a fill and a price move) send one alert, not two. Returns whether an alert was sent.
    """
    limit = RiskLimit.objects.select_for_update().filter(owner_id=user_id, symbol=symbol).first()
    if limit is None:
        return False
    quantity = Position.objects.filter(owner_id=user_id, symbol=symbol).values_list("quantity", flat=True).first()
    current = notional(quantity or ZERO, price)
    verdict = risk.evaluate(breached=limit.breached, notional=current, limit=limit.max_notional)
    if verdict.breached != limit.breached:
        limit.breached = verdict.breached
        limit.save(update_fields=["breached", "updated_at"])
    if verdict.alert:
        fields = {
            "alert_type": risk.ALERT_TYPE,
            "severity": risk.severity(notional=current, limit=limit.max_notional),
            "message": risk.alert_message(symbol, notional=current, limit=limit.max_notional),
            "limit_value": limit.max_notional,
            "current_value": current,
            "symbol": symbol,
        }
        _on_commit(lambda: publish.publish_risk_alert(user_id, **fields))
        logger.info("risk limit crossed for user %s on %s", user_id, symbol)
    return verdict.alert


def risk_limits_check(*, symbol: str, price: Decimal) -> int:
    """Check every limit on a symbol whose owner holds it (or that may re-arm) at a new price."""
    alerts = 0
    for owner_id in selectors.risk_limit_owners_to_check(symbol=symbol):
        try:
            alerts += risk_limit_check(user_id=owner_id, symbol=symbol, price=price)
        except Exception:
            logger.exception("risk check for user %s on %s failed", owner_id, symbol)
    return alerts


@transaction.atomic
def risk_limit_set(*, user_id: int, symbol: str, max_notional: Decimal) -> tuple[RiskLimit, bool]:
    """Create or replace the user's limit for a symbol, then check it at once at the last price.

    Returns (limit, created). A changed limit starts un-breached, so a position already above the
    new limit is announced right away.
    """
    tradable = _tradable_symbol(symbol)
    max_notional = _positive_amount(max_notional, field="max_notional", what="max_notional")
    limit, created = RiskLimit.objects.select_for_update().get_or_create(
        owner_id=user_id, symbol=tradable.name, defaults={"max_notional": max_notional}
    )
    if not created:
        limit.max_notional = max_notional
        limit.breached = False
        limit.save(update_fields=["max_notional", "breached", "updated_at"])
    price = selectors.market_price(symbol=tradable.name)
    if price is not None:
        risk_limit_check(user_id=user_id, symbol=tradable.name, price=price)
        limit.refresh_from_db()
    return limit, created


# --- bots ----------------------------------------------------------------------------------------


def _locked_bot(*, user_id: int, bot_id: int) -> Bot:
    bot = Bot.objects.select_for_update().filter(owner_id=user_id, pk=bot_id).first()
    if bot is None:
        raise NotFound(f"bot {bot_id} not found")
    return bot


def bot_validate(*, name: object, strategy: object, symbol: object, params: object) -> tuple[str, str, dict]:
    """The cleaned (name, symbol, params) of a bot definition, or InvalidInput; writes nothing."""
    if not isinstance(name, str) or not name.strip():
        raise InvalidInput("name must be a non-empty string", field="name")
    if len(name.strip()) > 100:
        raise InvalidInput("name must be at most 100 characters", field="name")
    if strategy not in bot_logic.STRATEGIES:
        raise InvalidInput(
            f"unknown strategy {strategy!r}; available: {', '.join(bot_logic.STRATEGIES)}", field="strategy"
        )
    tradable = _tradable_symbol(symbol)
    return name.strip(), tradable.name, bot_logic.dca_params(params).as_json()


def _set_bot_status(bot: Bot, status: str, reason: str = "") -> Bot:
    bot.status = status
    bot.status_reason = reason[:300]
    bot.save(update_fields=["status", "status_reason", "updated_at"])
    _publish_bot(bot)
    logger.info("bot %s is now %s", bot.pk, status)
    return bot


@transaction.atomic
def bot_create(*, user_id: int, name: str, symbol: str, params: dict, strategy: str = Bot.Strategy.DCA) -> Bot:
    """A new bot, stopped until started."""
    name, symbol_name, clean_params = bot_validate(name=name, strategy=strategy, symbol=symbol, params=params)
    bot = Bot.objects.create(owner_id=user_id, name=name, strategy=strategy, symbol=symbol_name, params=clean_params)
    _publish_bot(bot)
    return bot


@transaction.atomic
def bot_update(
    *, user_id: int, bot_id: int, name: str | None = None, symbol: str | None = None, params: dict | None = None
) -> Bot:
    """Rename a bot or change its symbol or parameters (it keeps its status)."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    bot.name, bot.symbol, bot.params = bot_validate(
        name=bot.name if name is None else name,
        strategy=bot.strategy,
        symbol=bot.symbol if symbol is None else symbol,
        params=bot.params if params is None else params,
    )
    bot.save(update_fields=["name", "symbol", "params", "updated_at"])
    _publish_bot(bot)
    return bot


@transaction.atomic
def bot_start(*, user_id: int, bot_id: int) -> Bot:
    """Run a stopped, paused or failed bot; starting a running bot changes nothing."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    if bot.status == Bot.Status.RUNNING:
        return bot
    if selectors.symbol_tradable(name=bot.symbol) is None:
        raise InvalidState(f"bot {bot_id} trades {bot.symbol}, which is disabled; change its symbol first")
    try:
        bot_logic.dca_params(bot.params)
    except InvalidInput as exc:
        raise InvalidState(f"bot {bot_id} cannot start: {exc.message}") from None
    return _set_bot_status(bot, Bot.Status.RUNNING)


@transaction.atomic
def bot_stop(*, user_id: int, bot_id: int) -> Bot:
    """Stop a bot; stopping a stopped bot changes nothing. Its open orders stay as they are."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    if bot.status == Bot.Status.STOPPED:
        return bot
    return _set_bot_status(bot, Bot.Status.STOPPED)


@transaction.atomic
def bot_pause(*, user_id: int, bot_id: int) -> Bot:
    """Pause a running bot (start resumes it)."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    if bot.status != Bot.Status.RUNNING:
        raise InvalidState(f"bot {bot_id} is {bot.status}; only a running bot can be paused")
    return _set_bot_status(bot, Bot.Status.PAUSED)


@transaction.atomic
def bot_run_due(*, bot_id: int, now: datetime, prices: Prices | None = None) -> Order | None:
    """One step of a running bot's strategy: place its DCA buy if one is due. Returns the order.

    The bot's row lock and last_run_at make this safe to call from two workers at once: the
    second sees the first's run and waits for the next interval.
    """
    bot = Bot.objects.select_for_update().filter(pk=bot_id).first()
    if bot is None or bot.status != Bot.Status.RUNNING:
        return None
    symbol = selectors.symbol_tradable(name=bot.symbol)
    if symbol is None:
        _set_bot_status(bot, Bot.Status.ERROR, f"{bot.symbol} is disabled; change the bot's symbol")
        return None
    try:
        params = bot_logic.dca_params(bot.params)
    except InvalidInput as exc:
        _set_bot_status(bot, Bot.Status.ERROR, exc.message)
        return None
    decision = bot_logic.dca_decision(
        params=params,
        symbol=bot.symbol,
        last_run_at=bot.last_run_at,
        now=now,
        price=selectors.market_price(symbol=bot.symbol, prices=prices),
        step_size=symbol.step_size,
    )
    if decision.action == bot_logic.Action.FAIL:
        _set_bot_status(bot, Bot.Status.ERROR, decision.reason)
        return None
    if decision.action == bot_logic.Action.WAIT:
        return None
    try:
        order = order_place(
            user_id=bot.owner_id,
            symbol=bot.symbol,
            side=Side.BUY,
            order_type=Order.Type.MARKET,
            quantity=decision.quantity,
            bot_id=bot.pk,
            prices=prices,
        )
    except InvalidInput as exc:
        _set_bot_status(bot, Bot.Status.ERROR, f"order refused: {exc.message}")
        return None
    bot.last_run_at = now
    bot.save(update_fields=["last_run_at"])
    return order


def bots_run_due(*, now: datetime, prices: Prices | None = None) -> list[Order]:
    """Run every running bot's strategy once; one bot's failure does not stop the others."""
    orders = []
    for bot_id in selectors.bot_ids_running():
        try:
            order = bot_run_due(bot_id=bot_id, now=now, prices=prices)
        except Exception:
            logger.exception("bot %s step failed", bot_id)
            continue
        if order is not None:
            orders.append(order)
    return orders
