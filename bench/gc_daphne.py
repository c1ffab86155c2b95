"""daphne, with every full (generation 2) garbage collection timed: `gc-pause <unix time> <ms>` on stderr.

    python bench/gc_daphne.py -b 127.0.0.1 -p PORT tradingsite.asgi:application

Used by `bench/fanout.py --gc-log`: the collections are paused event loops, so they show up as
latency spikes for every client at once.
"""

import gc
import sys
import time

_started: list[float] = []


def _time_full_collections(phase: str, info: dict) -> None:
    if info["generation"] != 2:
        return
    if phase == "start":
        _started[:] = [time.perf_counter()]
    elif _started:
        pause_ms = 1000 * (time.perf_counter() - _started[0])
        sys.stderr.write(f"gc-pause {time.time():.3f} {pause_ms:.1f} collected={info['collected']}\n")


if __name__ == "__main__":
    gc.callbacks.append(_time_full_collections)
    from daphne.cli import CommandLineInterface

    CommandLineInterface.entrypoint()
