"""Bots: creating, changing, starting, pausing and stopping them, and running their strategies.

DCA places a market buy every interval. Grid keeps a ladder of limit orders: placed when it starts,
each filled one replaced by the opposite order one level away (bot_grid_counter, called from the
fill). Stopping a grid bot cancels its open orders (their reservations go back to free); pausing
keeps them resting but places no replacements until it runs again.
"""

from __future__ import annotations

import logging
from datetime import datetime
from decimal import Decimal

from django.db import transaction

from accounts import bots as bot_logic
from accounts import selectors
from accounts.exceptions import InvalidInput, InvalidState, MarketUnavailable, NotFound, TradingError
from accounts.models import Bot, Order, Side
from accounts.money import plain
from accounts.services import orders
from accounts.services._common import Prices, app, lock_user, publish_bot, tradable_symbol

logger = logging.getLogger("accounts.services")


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
    tradable = tradable_symbol(symbol)
    params = bot_logic.params_for(strategy, params)
    if isinstance(params, bot_logic.GridParams):
        bot_logic.grid_ladder(params, tradable.tick_size)  # levels at least a tick apart
        if tradable.step_size > 0 and params.quantity_per_level % tradable.step_size:
            raise InvalidInput(
                f"quantity_per_level must be a multiple of {tradable.name}'s step size {plain(tradable.step_size)}",
                field="params",
            )
    return name.strip(), tradable.name, params.as_json()


def _set_bot_status(bot: Bot, status: str, reason: str = "") -> Bot:
    bot.status = status
    bot.status_reason = reason[:300]
    bot.save(update_fields=["status", "status_reason", "updated_at"])
    publish_bot(bot)
    logger.info("bot %s is now %s", bot.pk, status)
    return bot


@transaction.atomic
def bot_create(*, user_id: int, name: str, symbol: str, params: dict, strategy: str = Bot.Strategy.DCA) -> Bot:
    """A new bot, stopped until started; refused over MAX_BOTS_PER_USER."""
    name, symbol_name, clean_params = bot_validate(name=name, strategy=strategy, symbol=symbol, params=params)
    lock_user(user_id)
    limit = app().max_bots_per_user
    count = Bot.objects.filter(owner_id=user_id).count()
    if count >= limit:
        raise InvalidInput(
            f"you have {count} bots, the most allowed (MAX_BOTS_PER_USER={limit}); delete one before creating another"
        )
    bot = Bot.objects.create(owner_id=user_id, name=name, strategy=strategy, symbol=symbol_name, params=clean_params)
    publish_bot(bot)
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
    publish_bot(bot)
    return bot


@transaction.atomic
def bot_start(*, user_id: int, bot_id: int) -> Bot:
    """Run a stopped, paused or failed bot; starting a running bot changes nothing. A grid bot
    started from stopped (or error) places its ladder on its next step; resumed from paused it
    keeps the orders it has."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    if bot.status == Bot.Status.RUNNING:
        return bot
    if selectors.symbol_tradable(name=bot.symbol) is None:
        raise InvalidState(f"bot {bot_id} trades {bot.symbol}, which is disabled; change its symbol first")
    try:
        bot_validate(name=bot.name, strategy=bot.strategy, symbol=bot.symbol, params=bot.params)
    except InvalidInput as exc:
        raise InvalidState(f"bot {bot_id} cannot start: {exc.message}") from None
    if bot.strategy == Bot.Strategy.GRID and bot.status != Bot.Status.PAUSED:
        bot.last_run_at = None  # the ladder is placed afresh
        bot.save(update_fields=["last_run_at"])
    return _set_bot_status(bot, Bot.Status.RUNNING)


@transaction.atomic
def bot_stop(*, user_id: int, bot_id: int) -> Bot:
    """Stop a bot; stopping a stopped bot changes nothing. A grid bot's open orders are canceled."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    if bot.status == Bot.Status.STOPPED:
        return bot
    if bot.strategy == Bot.Strategy.GRID:
        orders.orders_cancel_all(user_id=user_id, bot_id=bot.pk)
    return _set_bot_status(bot, Bot.Status.STOPPED)


@transaction.atomic
def bot_pause(*, user_id: int, bot_id: int) -> Bot:
    """Pause a running bot (start resumes it)."""
    bot = _locked_bot(user_id=user_id, bot_id=bot_id)
    if bot.status != Bot.Status.RUNNING:
        raise InvalidState(f"bot {bot_id} is {bot.status}; only a running bot can be paused")
    return _set_bot_status(bot, Bot.Status.PAUSED)


# --- running the strategies ----------------------------------------------------------------------


@transaction.atomic
def bot_run_due(*, bot_id: int, now: datetime, prices: Prices | None = None) -> Order | None:
    """One step of a running bot's strategy. Returns the order it placed, if any.

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
        params = bot_logic.params_for(bot.strategy, bot.params)
    except InvalidInput as exc:
        _set_bot_status(bot, Bot.Status.ERROR, exc.message)
        return None
    if isinstance(params, bot_logic.GridParams):
        return _grid_open(bot, params, symbol=symbol, now=now, prices=prices)
    return _dca_step(bot, params, step_size=symbol.step_size, now=now, prices=prices)


def _dca_step(bot: Bot, params: bot_logic.DcaParams, *, step_size: Decimal, now: datetime, prices) -> Order | None:
    decision = bot_logic.dca_decision(
        params=params,
        symbol=bot.symbol,
        last_run_at=bot.last_run_at,
        now=now,
        price=selectors.market_price(symbol=bot.symbol, prices=prices),
        step_size=step_size,
    )
    if decision.action == bot_logic.Action.FAIL:
        _set_bot_status(bot, Bot.Status.ERROR, decision.reason)
        return None
    if decision.action == bot_logic.Action.WAIT:
        return None
    try:
        with transaction.atomic():
            order = orders.order_place(
                user_id=bot.owner_id,
                symbol=bot.symbol,
                side=Side.BUY,
                order_type=Order.Type.MARKET,
                quantity=decision.quantity,
                bot_id=bot.pk,
                prices=prices,
            )
    except MarketUnavailable:
        return None  # no fresh price or book right now: the next step tries again
    except InvalidInput as exc:
        _set_bot_status(bot, Bot.Status.ERROR, f"order refused: {exc.message}")
        return None
    bot.last_run_at = now
    bot.save(update_fields=["last_run_at"])
    return order


def _grid_open(bot: Bot, params: bot_logic.GridParams, *, symbol, now: datetime, prices) -> Order | None:
    """Place a started grid bot's ladder once a price is known: buys below the market, sells above
    (as far as the base balance goes). A buy the user cannot pay for puts the bot in error."""
    if bot.last_run_at is not None:
        return None  # the ladder is out; fills keep it going
    price = selectors.market_price(symbol=bot.symbol, prices=prices)
    if price is None:
        return None
    ladder = bot_logic.grid_ladder(params, symbol.tick_size)
    placed = []
    for side, level in bot_logic.grid_opening(ladder, price):
        try:
            with transaction.atomic():
                placed.append(_grid_place(bot, side, level, params.quantity_per_level, prices))
        except InvalidInput as exc:
            if side == Side.SELL:
                continue  # no base to sell yet: those levels fill in as buys fill
            _set_bot_status(bot, Bot.Status.ERROR, f"grid order refused: {exc.message}")
            break
    bot.last_run_at = now
    bot.save(update_fields=["last_run_at"])
    return placed[0] if placed else None


def _grid_place(bot: Bot, side: str, price: Decimal, quantity: Decimal, prices) -> Order:
    return orders.order_place(
        user_id=bot.owner_id,
        symbol=bot.symbol,
        side=side,
        order_type=Order.Type.LIMIT,
        quantity=quantity,
        price=price,
        bot_id=bot.pk,
        prices=prices,
    )


def bot_grid_counter(*, bot: Bot, side: str, price: Decimal, prices: Prices | None = None) -> Order | None:
    """After a grid order filled at `price`: the opposite order one level away (the caller holds the
    bot's lock, in the fill's transaction). A refusal puts the bot in error; the fill stands."""
    try:
        params = bot_logic.grid_params(bot.params)
        symbol = selectors.symbol_tradable(name=bot.symbol)
        if symbol is None:
            raise InvalidInput(f"{bot.symbol} is disabled")
        counter = bot_logic.grid_counter(bot_logic.grid_ladder(params, symbol.tick_size), side, price)
        if counter is None:
            return None
        with transaction.atomic():
            return _grid_place(bot, counter[0], counter[1], params.quantity_per_level, prices)
    except TradingError as exc:
        _set_bot_status(bot, Bot.Status.ERROR, f"grid could not replace its {side} at {plain(price)}: {exc}")
        return None


def bots_run_due(*, now: datetime, prices: Prices | None = None) -> list[Order]:
    """Run every running bot's strategy once; one bot's failure does not stop the others."""
    placed = []
    for bot_id in selectors.bot_ids_running():
        try:
            order = bot_run_due(bot_id=bot_id, now=now, prices=prices)
        except Exception:
            logger.exception("bot %s step failed", bot_id)
            continue
        if order is not None:
            placed.append(order)
    return placed
