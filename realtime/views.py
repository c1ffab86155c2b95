"""HTTP views of the gateway: /ws/status (health and connection figures) and /metrics (Prometheus)."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from rest_framework.authentication import SessionAuthentication
from rest_framework.decorators import api_view, authentication_classes, permission_classes
from rest_framework.permissions import AllowAny
from rest_framework.response import Response
from rest_framework_simplejwt.authentication import JWTAuthentication

from realtime.providers import providers
from realtime.registry import cached_status


@api_view(["GET"])
@authentication_classes([JWTAuthentication, SessionAuthentication])
@permission_classes([AllowAny])
def status(request):
    """Connection figures across all instances; the per-user map only for staff."""
    figures = cached_status()  # at most every 2 s, in this request's thread: never on the event loop
    app = settings.APP
    body = {
        "status": "active",
        "active_connections": figures.active_connections,
        "total_subscriptions": figures.total_subscriptions,
        "connections_by_endpoint": figures.by_endpoint,
        "channel_layer": "redis" if app.redis_url else "in-memory",
        "market_data": providers.market_status(),
        "settings": {
            "heartbeat_interval": app.ws_heartbeat_interval,
            "max_connections_per_user": app.ws_max_connections_per_user,
            "message_queue_size": app.ws_message_queue_size,
            "reconnect_timeout": app.ws_reconnect_timeout,
            "max_message_bytes": app.ws_max_message_bytes,
            "rate_limit_per_second": app.ws_rate_limit_per_second,
        },
    }
    if request.user.is_authenticated and request.user.is_staff:
        body["user_connections"] = figures.user_connections
    return Response(body)


def metrics(request):
    """This process's Prometheus metrics; scrape every instance."""
    return HttpResponse(generate_latest(), content_type=CONTENT_TYPE_LATEST)


def demo_page(request):
    """The live trading screen; the client settings it needs come from the server's own."""
    from django.shortcuts import render

    app = settings.APP
    client_config = {
        "heartbeatInterval": app.ws_heartbeat_interval,
        "reconnectTimeout": app.ws_reconnect_timeout,
        "symbols": list(app.market_symbols),
    }
    return render(request, "index.html", {"client_config": client_config})
