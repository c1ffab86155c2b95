"""The one place that decides a client's address, for HTTP requests and ASGI scopes (WebSockets) alike.

`X-Forwarded-For` is believed only as far as `TRUSTED_PROXY_COUNT` proxies we run ourselves: each
appends the address it received the request from, so with N trusted proxies the N-th entry from the
right is what the outermost of them saw. Everything left of it was written by the client and can be
anything. With the default of 0 the header is ignored and the peer address is the client.
"""

from __future__ import annotations

import ipaddress

from django.conf import settings


def client_address(forwarded_for: str | None, peer: str | None, trusted_proxies: int) -> str:
    """The client's address from the X-Forwarded-For value, the TCP peer and the proxy count (pure).

    '' when nothing is known (an ASGI server that gives no peer).
    """
    peer = peer or ""
    if trusted_proxies <= 0 or not forwarded_for:
        return peer
    hops = [hop.strip() for hop in forwarded_for.split(",")]  # empty ones keep their place
    # Fewer entries than proxies: every entry was written by a trusted proxy, the leftmost first.
    candidate = hops[-min(trusted_proxies, len(hops))]
    return candidate if _is_ip(candidate) else peer


def request_client_address(request) -> str:
    """The client address of a Django (or DRF) request."""
    meta = request.META
    return client_address(meta.get("HTTP_X_FORWARDED_FOR"), meta.get("REMOTE_ADDR"), settings.APP.trusted_proxy_count)


def headers_client_address(headers, peer: str | None, trusted_proxies: int) -> str:
    """The same from ASGI headers, [(name, value)] as bytes; repeated X-Forwarded-For headers count
    as one list, in order, as RFC 9110 says for any repeated list header (pure)."""
    forwarded = [value.decode("latin-1") for name, value in headers if name.lower() == b"x-forwarded-for"]
    return client_address(",".join(forwarded) or None, peer, trusted_proxies)


def scope_client_address(scope: dict) -> str:
    """The client address of an ASGI scope (HTTP or WebSocket)."""
    peer = (scope.get("client") or [None])[0]
    return headers_client_address(scope.get("headers", []), peer, settings.APP.trusted_proxy_count)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
