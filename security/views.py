"""The token endpoints: their own per-address rate (`login`), and django-axes' lockout as a 429.

The lockout is checked here, before the serializer authenticates, because DRF gives axes its own
Request object, whose lockout mark the axes middleware never sees. So the LOGIN_FAILURE_LIMIT
failures themselves are answered 401 like any wrong password, and every attempt after them 429
(the right password too) without hashing anything, until the 15 minutes have passed.
"""

from __future__ import annotations

from axes.handlers.proxy import AxesProxyHandler
from django.conf import settings
from rest_framework import exceptions
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

from security.throttling import LoginThrottle

LOCKED_OUT = "Too many failed logins for this username or from this address; try again later."


class LoginView(TokenObtainPairView):
    throttle_classes = (LoginThrottle,)

    def post(self, request, *args, **kwargs):
        data = request.data if isinstance(request.data, dict) else {}
        if not AxesProxyHandler.is_allowed(request, {"username": data.get("username")}):
            raise exceptions.Throttled(wait=settings.AXES_COOLOFF_TIME.total_seconds(), detail=LOCKED_OUT)
        return super().post(request, *args, **kwargs)


class RefreshView(TokenRefreshView):
    throttle_classes = (LoginThrottle,)
