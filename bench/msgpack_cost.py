"""?format=msgpack against JSON, per message: bytes on the wire and the CPU it adds in a process.

    .venv/bin/python bench/msgpack_cost.py [--connections 500] [--repeat 5]

In-process, no server: for a ticker, a trade and a 20-level order book as the worker publishes them,
the frame's bytes in each format; the one-off conversion of an update's JSON text to MessagePack
(realtime.wire.packed on a cold memo: what a process pays once per update); and what each further
connection of the process costs for that update: JSON hands daphne the text (which encodes it to
UTF-8 bytes for every connection), MessagePack a memo lookup returning the same bytes. The end-to-end
comparison under load is bench/fanout.py --only ours,ours-msgpack.
"""

from __future__ import annotations

import argparse
import sys
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def samples() -> dict[str, str]:
    from realtime import history, protocol
    from tests import messages

    levels = [[f"{Decimal('50000.00') - n}", "0.12345678"] for n in range(20)]  # strings, as books hold them
    book = protocol.orderbook(
        symbol="BTCUSDT",
        bids=levels,
        asks=[[f"{Decimal(p) + 40}", q] for p, q in levels],
        timestamp="2026-01-01T00:00:00.000Z",
        last_update_id=123456789,
        checksum=1234567890,
    )
    shaped = {
        "ticker": messages.ticker("BTCUSDT", "50000.01"),
        "trade": messages.trade("BTCUSDT", "50000.01", trade_id=123456789),
        "orderbook": book,
    }
    return {kind: history.encode_with_seq(message, 1_700_000_000_000) for kind, message in shaped.items()}


def per_call_us(action, calls: int) -> float:
    started = time.process_time()
    for _ in range(calls):
        action()
    return 1e6 * (time.process_time() - started) / calls


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500, help="connections of a process given each update")
    parser.add_argument("--repeat", type=int, default=5, help="rounds; the median is printed (default 5)")
    args = parser.parse_args()

    import django

    django.setup()
    from realtime import wire

    print(
        f"| message | JSON bytes | MessagePack bytes | ratio | convert once µs | per connection: JSON encode µs "
        f"| per connection: memo µs | update to {args.connections} connections: JSON µs | MessagePack µs |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, text in samples().items():
        packed = wire.packed(text)
        rounds = []
        for _ in range(args.repeat):

            def cold(text=text):
                wire._memo.pop(text, None)
                wire.packed(text)

            convert = per_call_us(cold, 20_000)
            json_each = per_call_us(lambda text=text: text.encode("utf8"), 200_000)
            memo_each = per_call_us(lambda text=text: wire.packed(text), 200_000)
            rounds.append((convert, json_each, memo_each))
        convert, json_each, memo_each = (sorted(r[i] for r in rounds)[len(rounds) // 2] for i in range(3))
        n = args.connections
        print(
            f"| {kind} | {len(text.encode())} | {len(packed)} | {len(packed) / len(text.encode()):.2f} "
            f"| {convert:.2f} | {json_each:.3f} | {memo_each:.3f} "
            f"| {n * json_each:.0f} | {convert + n * memo_each:.0f} |"
        )


if __name__ == "__main__":
    import os

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tradingsite.settings")
    os.environ.setdefault("DJANGO_SECRET_KEY", "bench-only-secret-key-0123456789-abcdefghijklmnop")
    main()
