"""HTTP views of the gateway: /ws/status and /metrics (filled in below)."""
