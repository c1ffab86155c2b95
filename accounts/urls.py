"""Trading REST API routes, mounted under /api/ (see accounts/api.py for the shapes)."""

from django.urls import path

from accounts import api

urlpatterns = [
    path("orders/", api.OrderListCreate.as_view(), name="orders"),
    path("orders/cancel-all/", api.OrderCancelAll.as_view(), name="orders_cancel_all"),
    path("orders/<int:order_id>/", api.OrderDetail.as_view(), name="order_detail"),
    path("orders/<int:order_id>/cancel/", api.OrderCancel.as_view(), name="order_cancel"),
    path("bots/", api.BotListCreate.as_view(), name="bots"),
    path("bots/<int:bot_id>/", api.BotDetail.as_view(), name="bot_detail"),
    path("bots/<int:bot_id>/start/", api.BotStart.as_view(), name="bot_start"),
    path("bots/<int:bot_id>/stop/", api.BotStop.as_view(), name="bot_stop"),
    path("bots/<int:bot_id>/pause/", api.BotPause.as_view(), name="bot_pause"),
    path("portfolio/", api.PortfolioView.as_view(), name="portfolio"),
    path("risk-limits/", api.RiskLimitListSet.as_view(), name="risk_limits"),
]
