"""JWT authentication for WebSocket connections.

The token may come from `?token=`, from `Authorization: Bearer`, or, for browsers (which cannot set
headers), from the `Sec-WebSocket-Protocol` header as the pair `bearer, <token>`; the consumer then
echoes `bearer` back as the chosen subprotocol. The middleware only records the outcome in the
scope; the consumer accepts the socket first and then closes with the code, because a close before
accept shows a browser an HTTP 403 and never the code. No per-connection state is kept here.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AnonymousUser
from rest_framework_simplejwt.exceptions import TokenError
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import AccessToken

from realtime.protocol import Code
from realtime.providers import providers

logger = logging.getLogger(__name__)

BEARER_SUBPROTOCOL = "bearer"


@dataclass(frozen=True, slots=True)  # one per connection, in its scope
class AuthResult:
    user: object  # a User, or AnonymousUser
    code: int | None = None  # None: authenticated
    message: str = ""
    subprotocol: str | None = None
    expires_at: int | None = None  # the access token's `exp`, seconds since the epoch

    @property
    def ok(self) -> bool:
        return self.code is None


def token_from_scope(scope: dict) -> tuple[str | None, str | None]:
    """The raw token and the subprotocol to echo (pure)."""
    headers = {name.lower(): value for name, value in scope.get("headers", [])}
    protocols = [p.strip() for p in headers.get(b"sec-websocket-protocol", b"").decode("latin-1").split(",")]
    if BEARER_SUBPROTOCOL in protocols:
        index = protocols.index(BEARER_SUBPROTOCOL)
        if index + 1 < len(protocols) and protocols[index + 1]:
            return protocols[index + 1], BEARER_SUBPROTOCOL
    authorization = headers.get(b"authorization", b"").decode("latin-1")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip(), None
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    token = (query.get("token") or [None])[0]
    return (token or None), None


def validate_access_token(raw: str | None) -> tuple[int | None, int | None, str]:
    """(user id, expiry, '') for a valid access token, else (None, None, why). Pure apart from the clock."""
    if not raw:
        return None, None, "Authentication token required: pass ?token=<access JWT>"
    try:
        token = AccessToken(raw)  # signature, expiry and token type ("access", not "refresh")
    except TokenError as exc:
        return None, None, f"Invalid token: {exc}"
    user_id = token.get(api_settings.USER_ID_CLAIM)
    if user_id is None:
        return None, None, "Invalid token: no user id claim"
    return user_id, token.get("exp"), ""


@database_sync_to_async
def _active_user(user_id, raw_token: str | None) -> tuple[object | None, str]:
    """(the user, '') if it exists, is active and has not changed password since the token; else (None, why)."""
    user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
    if user is None or not user.is_active:
        return None, "User not found or inactive"
    refused = providers.token_current(user, raw_token) if raw_token else None  # registered by the security app
    if refused:
        return None, refused
    return user, ""


async def authenticate(scope: dict) -> AuthResult:
    raw, subprotocol = token_from_scope(scope)
    user_id, expires_at, why = validate_access_token(raw)
    if user_id is None:
        return AuthResult(AnonymousUser(), Code.AUTH_FAILED, why, subprotocol)
    # Every connect: a deactivated user, or a token from before a password change, is refused at once.
    user, why = await _active_user(user_id, raw)
    if user is None:
        return AuthResult(AnonymousUser(), Code.USER_INACTIVE, why, subprotocol)
    return AuthResult(user, None, "", subprotocol, expires_at)


class JWTAuthMiddleware:
    """Puts `auth` (an AuthResult) and `user` into the scope of WebSocket connections."""

    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket":
            result = await authenticate(scope)
            scope = dict(scope, auth=result, user=result.user)
        return await self.inner(scope, receive, send)


class OriginlessClientsAllowed:
    """Let clients that send no Origin (scripts, bots) past the browser Origin check.

    Browsers always send Origin, so `AllowedHostsOriginValidator` still guards every browser
    connection against cross-site use. A script could forge any Origin it likes, so demanding one
    would stop nobody; what protects /ws/trading is the token, which is never a cookie.
    """

    _asgi_single_callable = True  # an ASGI 3 application, though __call__ is not `async` (asgiref)

    def __init__(self, validated, unvalidated):
        self.validated = validated
        self.unvalidated = unvalidated

    def __call__(self, scope, receive, send):
        """The chosen application's coroutine, for the server to await: a choice made before the
        connection starts keeps no frame of its own suspended for the connection's whole life."""
        has_origin = any(name.lower() == b"origin" for name, _ in scope.get("headers", []))
        app = self.validated if has_origin else self.unvalidated
        return app(scope, receive, send)
