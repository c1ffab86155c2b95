"""A picture of bench/fanout.py runs: delivered %, p50/p99 latency and CPU per message against clients.

    .venv/bin/python bench/plot.py OUT.png RUN.json [RUN.json ...] [--only ours,ours-batched,reference]

Each RUN.json is what `bench/fanout.py --json` wrote (one client count each, any number of
repetitions); every point is the median over that file's repetitions. Needs matplotlib
(requirements-dev.txt).
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

LABELS = {
    "ours": "ours (daphne, one frame per message)",
    "ours-batched": "ours, ?batch=1",
    "reference": "bare websockets server",
    "ours-core": "ours, core layer",
    "plain-channels": "plain Channels",
}
COLOURS = {"ours": "tab:blue", "ours-batched": "tab:green", "reference": "tab:gray"}


def points(files: list[Path], servers: list[str]) -> dict[str, list[tuple[int, dict]]]:
    """server -> [(clients, medians)] sorted by clients."""
    out: dict[str, list[tuple[int, dict]]] = {}
    for path in files:
        data = json.loads(path.read_text())
        clients = data["args"]["clients"]
        for server in servers:
            rows = [r for run in data["runs"] for r in run if r["server"] == server]
            if not rows:
                continue
            medians = {
                key: statistics.median(r[key] for r in rows)
                for key in ("delivered", "p50_ms", "p99_ms", "cpu_ms_per_1000")
            }
            out.setdefault(server, []).append((clients, medians))
    return {server: sorted(values, key=lambda p: p[0]) for server, values in out.items()}


def plot(series: dict[str, list[tuple[int, dict]]], title: str, out: Path) -> None:
    fig, (delivered, latency, cpu) = plt.subplots(1, 3, figsize=(15, 4.6))
    for server, values in series.items():
        xs = [c for c, _ in values]
        colour = COLOURS.get(server)
        label = LABELS.get(server, server)
        delivered.plot(xs, [100 * m["delivered"] for _, m in values], "o-", color=colour, label=label)
        latency.plot(xs, [m["p99_ms"] for _, m in values], "o-", color=colour, label=f"{label}: p99")
        latency.plot(xs, [m["p50_ms"] for _, m in values], "s--", color=colour, label=f"{label}: p50")
        cpu.plot(xs, [m["cpu_ms_per_1000"] for _, m in values], "o-", color=colour, label=label)
    clients = sorted({c for values in series.values() for c, _ in values})
    for axis in (delivered, latency, cpu):
        axis.set_xlabel("clients (x 3 symbols x 10 updates/s)")
        axis.set_xticks(clients)
        axis.grid(True, alpha=0.3)
    delivered.set_ylabel("delivered %")
    delivered.set_ylim(bottom=min(90, delivered.get_ylim()[0]), top=101)
    latency.set_ylabel("latency, ms (log)")
    latency.set_yscale("log")
    cpu.set_ylabel("server CPU ms per 1000 delivered")
    cpu.set_ylim(bottom=0)
    delivered.legend(fontsize=8, loc="lower left")
    latency.legend(fontsize=7, loc="upper left")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", type=Path, nargs="+")
    parser.add_argument("--only", default="ours,ours-batched,reference")
    parser.add_argument("--title", default="Market fan-out on 2 shared cores: medians of bench/fanout.py --repeat 3")
    args = parser.parse_args()
    plot(points(args.runs, args.only.split(",")), args.title, args.out)


if __name__ == "__main__":
    main()
