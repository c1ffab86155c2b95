"""What tests share: one timeout, and builders for tokens."""

from __future__ import annotations

from datetime import timedelta

TIMEOUT = 10.0  # seconds any single awaited event may take before a test fails


def access_token(user_id: int, lifetime: timedelta | None = None) -> str:
    """A real simplejwt access token for a user id, signed with the test settings' key."""
    from rest_framework_simplejwt.tokens import AccessToken

    token = AccessToken()
    token["user_id"] = str(user_id)
    if lifetime is not None:
        token.set_exp(lifetime=lifetime)
    return str(token)


def refresh_token(user_id: int) -> str:
    from rest_framework_simplejwt.tokens import RefreshToken

    token = RefreshToken()
    token["user_id"] = str(user_id)
    return str(token)


def forged_token(user_id: int) -> str:
    """Well formed, but signed with a key the server does not have."""
    import jwt

    return jwt.encode(
        {"token_type": "access", "user_id": str(user_id), "exp": 4102444800, "jti": "x"},
        "not-the-servers-key-but-long-enough-for-hs256",
    )
