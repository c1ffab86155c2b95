"""Tokens die with the credentials they were issued for.

Every token the server issues carries `credentials`: a keyed hash of the user's password hash
(Django's own session auth hash, the same mechanism that signs sessions out on a password change).
A password change changes it, so access tokens issued before the change are refused by the REST API
and by the WebSocket handshake. This is simplejwt's CHECK_REVOKE_TOKEN idea with two differences:
the claim is an HMAC under SECRET_KEY rather than an MD5 of the hash, and a token without the claim
(only our key can mint one; tokens issued before this existed) is judged by expiry alone.
"""

from __future__ import annotations

import hmac

from django.contrib.auth import get_user_model
from django.utils.translation import gettext_lazy as _
from rest_framework_simplejwt.authentication import JWTAuthentication
from rest_framework_simplejwt.exceptions import AuthenticationFailed
from rest_framework_simplejwt.serializers import TokenObtainPairSerializer, TokenRefreshSerializer
from rest_framework_simplejwt.settings import api_settings
from rest_framework_simplejwt.tokens import UntypedToken

CLAIM = "credentials"
REVOKED_MESSAGE = "Signed out: the password changed since this token was issued; sign in again"


def credentials_hash(user) -> str:
    return user.get_session_auth_hash()[:32]


def token_claim(raw: str) -> str | None:
    """The claim of an already verified token (the WebSocket handshake has only the raw text)."""
    return UntypedToken(raw, verify=False).get(CLAIM)


def token_current(user, claim: str | None) -> bool:
    """False when the token was issued for a password the user no longer has."""
    return claim is None or hmac.compare_digest(str(claim), credentials_hash(user))


class LoginSerializer(TokenObtainPairSerializer):
    """POST /api/token/: the refresh token (and every access token made from it) carries the claim."""

    @classmethod
    def get_token(cls, user):
        token = super().get_token(user)
        token[CLAIM] = credentials_hash(user)
        return token


class RefreshSerializer(TokenRefreshSerializer):
    """POST /api/token/refresh/: a refresh token from before a password change is refused too.

    Blacklisting already refuses those the server knew of; this also covers a password hash that
    Django re-made at a login (a stronger hasher), which changes the claim without a revocation, so
    that the client is told to sign in again rather than handed access tokens that will be refused.
    """

    def validate(self, attrs):
        refresh = self.token_class(attrs["refresh"])  # signature, expiry, type, blacklist
        claim = refresh.get(CLAIM)
        if claim is not None:
            user_id = refresh.get(api_settings.USER_ID_CLAIM)
            user = get_user_model().objects.filter(**{api_settings.USER_ID_FIELD: user_id}).first()
            if user is None or not token_current(user, claim):
                raise AuthenticationFailed(_(REVOKED_MESSAGE), code="credentials_changed")
        return super().validate(attrs)


class CredentialsJWTAuthentication(JWTAuthentication):
    """simplejwt's authentication, refusing tokens issued before the user's last password change."""

    def get_user(self, validated_token):
        user = super().get_user(validated_token)
        if not token_current(user, validated_token.get(CLAIM)):
            raise AuthenticationFailed(_(REVOKED_MESSAGE), code="credentials_changed")
        return user


def token_refusal(user, raw: str) -> str | None:
    """Why a WebSocket token is refused (issued before the user's password changed), or None."""
    return None if token_current(user, token_claim(raw)) else REVOKED_MESSAGE
