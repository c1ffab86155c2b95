"""A WebSocket to a path no consumer serves: refused cleanly instead of an HTTP 500 and a traceback.

Daphne can only answer a refused handshake with 403, which a browser cannot tell from an origin
refusal, so the socket is accepted, told what is wrong in the usual error frame, and closed with
4404. Plain ASGI: it runs before any consumer and keeps no state.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

NOT_FOUND_CODE = 4404
ENDPOINTS = ("/ws/market", "/ws/trading")


def not_found_frame(path: str) -> str:
    """The error frame sent before the close (pure)."""
    stamp = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    message = f"no WebSocket endpoint at {path}: connect to {' or '.join(ENDPOINTS)}"
    return json.dumps({"type": "error", "code": NOT_FOUND_CODE, "message": message, "timestamp": stamp})


async def unknown_websocket_path(scope, receive, send) -> None:
    if scope["type"] != "websocket":
        return
    event = await receive()
    if event["type"] != "websocket.connect":
        return
    accept = {"type": "websocket.accept"}
    if "bearer" in scope.get("subprotocols", ()):
        accept["subprotocol"] = "bearer"  # a browser drops a handshake that ignores its subprotocol
    await send(accept)
    await send({"type": "websocket.send", "text": not_found_frame(scope.get("path", ""))})
    await send({"type": "websocket.close", "code": NOT_FOUND_CODE})
