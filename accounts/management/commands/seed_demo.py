"""Create the demo users, symbols, a risk limit and a DCA bot; safe to run again (idempotent)."""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from accounts import selectors, services
from accounts.models import Bot, RiskLimit
from marketdata import services as marketdata_services

DEMO_USER = ("demo", "demo-pass-123")
ADMIN_USER = ("admin", "admin-pass-123")  # local demos only: change or delete it anywhere else
DEMO_LIMIT = ("BTCUSDT", Decimal("5000"))
DEMO_BOT = {"name": "DCA BTC", "symbol": "BTCUSDT", "params": {"quote_amount": "100", "interval_seconds": 10}}


class Command(BaseCommand):
    help = "Create demo data for local runs: users demo and admin, symbols, a BTCUSDT risk limit, a DCA bot."

    @transaction.atomic
    def handle(self, *args, **options) -> None:
        if not settings.APP.debug:  # the admin's password is printed in this file: never on a real server
            raise CommandError("seed_demo creates users with public passwords: it runs only with DJANGO_DEBUG=1")
        marketdata_services.symbol_seed_demo(names=settings.APP.market_symbols)
        demo = self._user(*DEMO_USER, staff=False)
        admin = self._user(*ADMIN_USER, staff=True)
        for user in (demo, admin):
            services.balances_ensure(user_id=user.pk)  # the starting USDT, visible before the first order
        symbol, max_notional = DEMO_LIMIT
        if selectors.symbol_tradable(name=symbol) is not None:
            if not RiskLimit.objects.filter(owner=demo, symbol=symbol).exists():
                services.risk_limit_set(user_id=demo.pk, symbol=symbol, max_notional=max_notional)
            if not Bot.objects.filter(owner=demo, name=DEMO_BOT["name"]).exists():
                services.bot_create(user_id=demo.pk, **DEMO_BOT)
        self.stdout.write("Demo data ready. Log in with:")
        for (username, password), user in ((DEMO_USER, demo), (ADMIN_USER, admin)):
            kept = "" if user.check_password(password) else "  (existing user: its changed password was kept)"
            role = "admin" if user.is_staff else "trader"
            self.stdout.write(f"  {role}: username {username!r} password {password!r}{kept}")
        self.stdout.write("  The admin account is for local demos only: never seed it on a shared server.")

    def _user(self, username: str, password: str, *, staff: bool):
        user, created = get_user_model().objects.get_or_create(
            username=username, defaults={"is_staff": staff, "is_superuser": staff, "is_active": True}
        )
        if created:
            user.set_password(password)
            user.save(update_fields=["password"])
        return user
