"""Paper matching cost: trades per second the engine's matching sustains with many open orders.

    python bench/matching.py [--orders 10000] [--symbols 6] [--trades 2000] [--database sqlite|URL]

Seeds `--orders` resting limit orders spread over `--symbols` symbols (buys below the market, sells
above it, over 50 users), then feeds the same trades to two matchers, in the same run and process:
- `before`: what the engine did until the second wave: load every open limit order of the symbol
  and filter them in Python (the old `orders_resting` selector and `match_resting`);
- `after`: `services.orders_match_trades`: per trade, the orders it crosses selected by price in
  SQL (index order_resting_price), placed before the trade, up to its quantity.
Two trade mixes: `quiet` trades print inside the spread and cross nothing (the common case: the
cost is the selection alone), `crossing` trades each reach a few resting orders and fill them.
Prints one JSON line per (mix, matcher) with trades/s.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

MID = Decimal("100.00")
TICK = Decimal("0.01")


def setup_django(database: str) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    os.environ.setdefault("DJANGO_DEBUG", "1")
    os.environ.pop("REDIS_URL", None)  # in-memory layer and cache: the events the fills publish go nowhere
    if database == "sqlite":
        database = f"sqlite:///{tempfile.mkdtemp(prefix='bench-matching-')}/db.sqlite3"
    os.environ["DATABASE_URL"] = database
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)


def seed(orders: int, symbols: list[str], seed_value: int) -> None:
    from django.contrib.auth import get_user_model

    from accounts.models import Balance, Order
    from marketdata.models import Symbol

    rng = random.Random(seed_value)
    for name in symbols:
        Symbol.objects.update_or_create(name=name, defaults={"step_size": "0.001", "tick_size": "0.01"})
    users = [get_user_model().objects.create(username=f"bench{i}") for i in range(50)]
    placed = datetime.now(UTC) - timedelta(minutes=1)
    rows = []
    for i in range(orders):
        side = "buy" if i % 2 == 0 else "sell"
        offset = TICK * rng.randint(10, 1000)  # 0.10 to 10.00 away from the mid
        rows.append(
            Order(
                owner=users[i % len(users)],
                symbol=symbols[i % len(symbols)],
                side=side,
                order_type="limit",
                quantity=Decimal("1"),
                price=MID - offset if side == "buy" else MID + offset,
                reserved=Decimal("1000") if side == "buy" else Decimal("1"),
            )
        )
    Order.objects.bulk_create(rows, batch_size=1000)
    Order.objects.update(created_at=placed)
    # Enough of everything, locked as the open orders reserve it, so crossing trades can fill.
    for user in users:
        Balance.objects.create(owner=user, asset="USDT", free=Decimal("1000000"), locked=Decimal("10000000"))
        for name in symbols:
            Balance.objects.create(owner=user, asset=name[:-4], free=Decimal("1000"), locked=Decimal("10000"))


def trades(mix: str, count: int, symbols: list[str], seed_value: int):
    from accounts.matching import Trade

    rng = random.Random(seed_value)
    moment = datetime.now(UTC)
    for i in range(count):
        symbol = symbols[i % len(symbols)]
        if mix == "quiet":
            price = MID + TICK * rng.randint(-9, 9)  # inside the resting orders' spread
        else:
            away = TICK * rng.randint(10, 30)  # reaches the nearest few resting orders of one side
            price = MID - away if i % 2 == 0 else MID + away
        yield symbol, Trade(price=price, quantity=Decimal("2"), time=moment + timedelta(microseconds=i))


def legacy_match(symbol: str, trade) -> int:
    """The matching before: every open limit order of the symbol loaded, then filtered in Python."""
    from accounts import matching
    from accounts.models import Order

    resting = Order.objects.filter(symbol=symbol, order_type=Order.Type.LIMIT, status__in=Order.OPEN_STATUSES).only(
        "id", "side", "price", "quantity", "filled_quantity", "status"
    )
    candidates = [
        matching.RestingOrder(order_id=o.pk, side=o.side, price=o.price, remaining=o.quantity - o.filled_quantity)
        for o in resting
    ]
    crossed = [o for o in candidates if matching.crosses(o.side, o.price, trade.price)]
    crossed.sort(key=matching.priority)
    return len(crossed)


def run(name: str, mix: str, count: int, symbols: list[str], seed_value: int) -> dict:
    from django.db import transaction

    from accounts import services

    batch = list(trades(mix, count, symbols, seed_value))
    sid = transaction.savepoint() if mix == "crossing" else None
    started = time.perf_counter()
    if name == "before":
        for symbol, trade in batch:
            legacy_match(symbol, trade)
    else:
        for symbol, trade in batch:
            services.orders_match_trades(symbol=symbol, trades=[trade])
    elapsed = time.perf_counter() - started
    if sid is not None:
        transaction.savepoint_rollback(sid)  # the next matcher sees the same open orders
    return {
        "matcher": name,
        "mix": mix,
        "trades": count,
        "seconds": round(elapsed, 3),
        "trades_per_s": round(count / elapsed, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders", type=int, default=10_000)
    parser.add_argument("--symbols", type=int, default=6)
    parser.add_argument("--trades", type=int, default=2000)
    parser.add_argument("--database", default="sqlite", help="sqlite (a temporary file) or a DATABASE_URL")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    setup_django(args.database)
    from django.db import transaction

    symbols = ["BTCUSDT", "ETHUSDT", "BNBUSDT", "SOLUSDT", "ADAUSDT", "XRPUSDT"][: args.symbols]
    seed(args.orders, symbols, args.seed)
    with transaction.atomic():  # crossing mixes are rolled back to a savepoint between matchers
        for mix in ("quiet", "crossing"):
            # "before" only selects (it never filled in the database): the crossing mix measures
            # "after" with its fills against "before" without any.
            for name in ("before", "after"):
                print(
                    json.dumps(run(name, mix, args.trades if name == "after" else args.trades // 4, symbols, args.seed))
                )


if __name__ == "__main__":
    main()
