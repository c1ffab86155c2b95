"""The exchange's REST API, for the one call the worker needs: the depth snapshot.

Standard library only (urllib in a worker thread): one small GET per book resync does not justify
an async HTTP dependency.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from urllib.parse import urlencode

from marketdata import normalize
from marketdata.exceptions import SnapshotError
from marketdata.normalize import DepthSnapshot

MAX_BODY_BYTES = 8 * 1024 * 1024  # a 5000-level snapshot is well under this
USER_AGENT = "trading-gateway-marketdata/1"


async def fetch_depth(rest_url: str, symbol: str, limit: int, timeout: float) -> DepthSnapshot:
    """GET /api/v3/depth -> DepthSnapshot; SnapshotError when unreachable or refused, NormalizeError when garbled."""
    url = f"{rest_url}/api/v3/depth?{urlencode({'symbol': symbol, 'limit': limit})}"
    body = await asyncio.to_thread(_get, url, timeout)
    return normalize.depth_snapshot(body)


def _get(url: str, timeout: float) -> bytes:
    if not url.startswith(("http://", "https://")):
        raise SnapshotError(f"BINANCE_REST_URL must be an http(s) URL, not {url.split('?')[0]!r}")
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT, "Accept": "application/json"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return response.read(MAX_BODY_BYTES)
    except urllib.error.HTTPError as error:
        detail = normalize.excerpt(error.read(300))
        raise SnapshotError(f"the depth endpoint answered HTTP {error.code}: {detail}") from None
    except (urllib.error.URLError, OSError) as error:
        raise SnapshotError(f"the depth endpoint is unreachable: {error}") from None


async def fetch_exchange_symbols(rest_url: str, timeout: float = 10.0) -> list[normalize.SymbolInfo]:
    """GET /api/v3/exchangeInfo -> the exchange's symbols with their trading filters."""
    body = await asyncio.to_thread(_get, f"{rest_url}/api/v3/exchangeInfo", timeout)
    return normalize.exchange_symbols(body)
