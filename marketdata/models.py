from __future__ import annotations

from django.db import models


class SymbolQuerySet(models.QuerySet):
    def enabled(self) -> SymbolQuerySet:
        """The one definition of a symbol clients may stream and trade."""
        return self.filter(enabled=True)


class Symbol(models.Model):
    """A tradable pair the platform streams and trades. Admin-managed; seeded from MARKET_SYMBOLS."""

    name = models.CharField(max_length=20, unique=True, help_text="Exchange symbol, e.g. BTCUSDT")
    base_asset = models.CharField(max_length=12, blank=True)
    quote_asset = models.CharField(max_length=12, blank=True)
    enabled = models.BooleanField(default=True, db_index=True)
    step_size = models.DecimalField(max_digits=30, decimal_places=18, default="0.00000001")
    tick_size = models.DecimalField(max_digits=30, decimal_places=18, default="0.00000001")
    min_notional = models.DecimalField(max_digits=30, decimal_places=8, default="0")
    updated_at = models.DateTimeField(auto_now=True)

    objects = SymbolQuerySet.as_manager()

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
