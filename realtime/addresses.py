"""The client's address: the peer, or X-Forwarded-For read only through proxies we run ourselves.

Each trusted proxy appends the address it received the request from, so with N trusted proxies in
front, the N-th entry from the right is the address the first of them saw: the client. Anything
further left was written by the client and proves nothing, so it is never used; with no trusted
proxy (the default) the header is ignored and the peer is the client.
"""

from __future__ import annotations


def client_address(peer: str | None, forwarded_for: str | None, trusted_proxies: int) -> str | None:
    """The address limits and lockouts are keyed on (pure)."""
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    if not hops:
        return peer
    return hops[-trusted_proxies] if len(hops) >= trusted_proxies else hops[0]


def scope_address(scope: dict, trusted_proxies: int) -> str | None:
    """The client address of an ASGI connection scope."""
    peer = (scope.get("client") or (None,))[0]
    forwarded = [value for name, value in scope.get("headers", []) if name.lower() == b"x-forwarded-for"]
    header = ",".join(value.decode("latin-1") for value in forwarded) if forwarded else None
    return client_address(peer, header, trusted_proxies)
