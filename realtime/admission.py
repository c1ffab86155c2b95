"""Who may hold a connection: the token's verdict (from the JWT middleware) and the registry's limits."""

from __future__ import annotations

from django.conf import settings

from realtime.protocol import Code, Endpoint
from realtime.registry import Connection, get_registry

Refusal = tuple[int, str]  # close code, message


async def admit(endpoint: Endpoint, scope: dict, conn: Connection) -> Refusal | None:
    """Register the connection and return None, or say why it is refused (and register nothing)."""
    limit = None
    if endpoint is Endpoint.TRADING:
        auth = scope.get("auth")
        if auth is None or not auth.ok:
            return (getattr(auth, "code", Code.AUTH_FAILED), getattr(auth, "message", "Authentication required"))
        conn.user_id = auth.user.pk
        limit = settings.APP.ws_max_connections_per_user
    if not await get_registry().acquire(conn, limit=limit):
        return (Code.TOO_MANY_CONNECTIONS, f"Maximum connections exceeded: at most {limit} per user")
    return None
