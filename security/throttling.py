"""DRF throttles keyed on the client address from realtime.addresses, never on the raw header.

DRF's own `get_ident` uses the whole `X-Forwarded-For` value when `NUM_PROXIES` is unset, so a
client that sends a new value per request gets a new bucket per request.
"""

from __future__ import annotations

from rest_framework.throttling import SimpleRateThrottle, UserRateThrottle

from realtime.addresses import request_client_address


class ClientAddressIdent:
    def get_ident(self, request) -> str:
        return request_client_address(request) or "unknown"


class UserThrottle(ClientAddressIdent, UserRateThrottle):
    """Per user when signed in, per client address otherwise (the `user` rate)."""


class LoginThrottle(ClientAddressIdent, SimpleRateThrottle):
    """Every request to the token endpoints from one client address (the `login` rate): each costs a
    password hash or a database look-up, whether or not it succeeds."""

    scope = "login"

    def get_cache_key(self, request, view) -> str:
        return self.cache_format % {"scope": self.scope, "ident": self.get_ident(request)}


def lockout_username(request, credentials: dict | None) -> str | None:
    """The username as django-axes keys it, marked as one: axes builds a bucket's cache key from the
    bare value, so without the mark a username spelled like an address would share that address's
    bucket, and anyone could lock an address out by failing logins as "203.0.113.7"."""
    username = credentials.get("username") if credentials is not None else request.POST.get("username")
    return None if username is None else f"user:{username}"
