"""Many values in one argument of a Redis script call, and the Lua that takes them apart.

redis-py packs every argument of a command in Python, at about a microsecond each, and parses every
element of a reply the same way. The worker's scripts take a batch's thousands of values (channels
and payloads, cache keys and values, history bodies): one argument each cost the worker more than
Redis spent running the scripts (measured: docs/BENCHMARKS.md). So the values of one kind travel
concatenated in one argument, with their byte lengths in another ("12,3,456"), and the script cuts
them apart with `split(sizes, joined)` from LUA_SPLIT, which it includes.

The keys a script touches are then not declared in KEYS: that is fine on the one Redis server (or a
Sentinel-watched master) this project runs on, never on a Redis Cluster.
"""

from __future__ import annotations

from collections.abc import Iterable

# split(sizes, joined): the values packed by `pack`, as a Lua list, in order.
LUA_SPLIT = """
local function split(sizes, joined)
  local values, at = {}, 1
  for size in string.gmatch(sizes, '%d+') do
    local stop = at + tonumber(size)
    values[#values + 1] = string.sub(joined, at, stop - 1)
    at = stop
  end
  return values
end
"""


def pack(values: Iterable[bytes | str]) -> tuple[str, bytes]:
    """The values as two script arguments: their byte lengths, comma-separated, and their concatenation."""
    encoded = [value.encode() if isinstance(value, str) else value for value in values]
    return ",".join([str(len(value)) for value in encoded]), b"".join(encoded)
