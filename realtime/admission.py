"""Who may hold a connection: the token's verdict (from the JWT middleware) and the registry's limits,
per user and per client address, across every instance."""

from __future__ import annotations

from django.conf import settings

from realtime.addresses import scope_client_address
from realtime.protocol import Code, Endpoint
from realtime.registry import Connection, Limits, get_registry

Refusal = tuple[int, str]  # close code, message


async def admit(endpoint: Endpoint, scope: dict, conn: Connection) -> Refusal | None:
    """Register the connection and return None, or say why it is refused (and register nothing)."""
    app = settings.APP
    conn.address = scope_client_address(scope) or None
    limits = Limits(per_address=app.ws_max_connections_per_ip)
    if endpoint is Endpoint.TRADING:
        auth = scope.get("auth")
        if auth is None or not auth.ok:
            return (getattr(auth, "code", Code.AUTH_FAILED), getattr(auth, "message", "Authentication required"))
        conn.user_id = auth.user.pk
        limits = Limits(per_user=app.ws_max_connections_per_user, per_address=app.ws_max_connections_per_ip)
    refused_by = await get_registry().acquire(conn, limits)
    if refused_by == "user":
        return (Code.TOO_MANY_CONNECTIONS, f"Maximum connections exceeded: at most {limits.per_user} per user")
    if refused_by == "address":
        limit = limits.per_address
        return (Code.TOO_MANY_CONNECTIONS, f"Maximum connections exceeded: at most {limit} from one address")
    return None
