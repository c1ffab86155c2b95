"""Prometheus metrics for the gateway, served at /metrics (prometheus-client)."""

from prometheus_client import Counter, Gauge, Histogram

ACTIVE_CONNECTIONS = Gauge("ws_active_connections", "Open WebSocket connections in this process", ["endpoint"])
MESSAGES_IN = Counter("ws_messages_in_total", "Client messages received, by type", ["type"])
MESSAGES_OUT = Counter("ws_messages_out_total", "Messages sent to clients, by type", ["type"])
SUBSCRIPTIONS = Gauge("ws_subscriptions", "Active subscriptions in this process", ["channel", "symbol"])
ERRORS = Counter("ws_errors_total", "Error frames and error closes sent, by code", ["code"])
CONNECTION_DURATION = Histogram(
    "ws_connection_duration_seconds",
    "How long WebSocket connections lasted",
    buckets=(1, 5, 30, 60, 300, 900, 3600, 4 * 3600, 24 * 3600),
)
OUTBOX_DROPS = Counter("ws_outbox_drops_total", "Messages dropped from slow clients' outboxes", ["type"])
OUTBOX_CONFLATIONS = Counter("ws_outbox_conflations_total", "Older price updates replaced by newer ones", ["type"])
INBOX_CONFLATIONS = Counter(
    "ws_inbox_conflations_total", "Price updates replaced before handling because this process fell behind"
)
SLOW_CONSUMER_CLOSES = Counter("ws_slow_consumer_closes_total", "Connections closed because they did not read")
PUBLISHED = Counter("realtime_published_total", "Messages published to channel-layer groups", ["kind"])

_out_children: dict[str, object] = {}


def count_out(kind: str, messages: int = 1) -> None:
    """MESSAGES_OUT for one message; label children cached because this runs per message per client."""
    child = _out_children.get(kind)
    if child is None:
        child = _out_children[kind] = MESSAGES_OUT.labels(type=kind)
    child.inc(messages)
