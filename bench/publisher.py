"""The load: R ticker updates a second per symbol, each carrying the publisher's wall clock.

    DJANGO_SETTINGS_MODULE=... python bench/publisher.py --mode market|plain --symbols A,B --rate R ...

`market`: through `realtime.publish.apublish_market` (the project's path: one pre-encoded event per
update on the "market" alias, whatever backend the settings give it). `plain`: `group_send` on the
core layer with the message dict, as a default Channels app does. Prints `measure` when the first
measured update goes out and `done {json}` after the last one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from realtime import protocol  # pure: no Django needed


def ticker(symbol: str, seq: int, run: str, measured: bool) -> dict:
    price = f"{50000 + (seq % 100) * 0.5:.2f}"
    message = protocol.ticker(
        symbol=symbol,
        price=price,
        price_change="12.50",
        price_change_percent="0.025",
        high_price="51000.00",
        low_price="49000.00",
        volume="12345.678",
        timestamp=protocol.now_iso(),
    )
    # Measurement fields outside the wire contract, read only by the benchmark's own clients.
    return {**message, "run": run, "mark": seq, "m": int(measured), "sent_ns": time.time_ns()}


async def publish_loop(args: argparse.Namespace) -> dict:
    from channels.layers import get_channel_layer

    from realtime import groups
    from realtime.publish import apublish_market

    if args.mode == "market":
        publish = apublish_market
    else:
        layer = get_channel_layer("default")

        async def publish(message: dict) -> None:
            await layer.group_send(
                groups.market("ticker", message["symbol"]), {"type": "market.message", "message": message}
            )

    symbols = args.symbols.split(",")
    warm, measured = round(args.warmup * args.rate), round(args.seconds * args.rate)
    loop = asyncio.get_running_loop()
    start = loop.time() + 0.05
    worst_lag = 0.0
    measure_started = measure_ended = cpu_started = 0.0
    for seq in range(warm + measured):
        due = start + seq / args.rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        else:
            worst_lag = max(worst_lag, -delay)
        if seq == warm:
            measure_started = time.time()
            cpu_started = sum(os.times()[:2])
            print("measure", flush=True)
        for symbol in symbols:
            await publish(ticker(symbol, seq, args.run, seq >= warm))
    measure_ended = time.time()
    return {
        "published_measured": measured * len(symbols),
        "measured_wall_s": measure_ended - measure_started,
        "worst_lag_s": worst_lag,
        "cpu_s": sum(os.times()[:2]) - cpu_started,  # the measured part only
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="fan-out benchmark publisher")
    parser.add_argument("--mode", choices=["market", "plain"], required=True)
    parser.add_argument("--symbols", required=True)
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--warmup", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--run", required=True, help="run id carried by every update")
    args = parser.parse_args()

    import django

    django.setup()
    summary = asyncio.run(publish_loop(args))
    print("done " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
