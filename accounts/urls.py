"""Trading REST API routes (filled in by the trading domain)."""

urlpatterns: list = []
