"""Paper-trading state per user: cash, bots, orders and their fills, positions, risk limits.

Every amount is a DecimalField(max_digits=30, decimal_places=12) (see accounts/money.py). Symbols
are stored by name (marketdata.Symbol.name): orders and fills are history and must outlive a symbol
being disabled. No business logic here: writes go through accounts/services.py.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from accounts.money import DECIMAL_PLACES, MAX_DIGITS
from accounts.portfolio import CASH_CURRENCY, STARTING_CASH


def _amount(**kwargs) -> models.DecimalField:
    return models.DecimalField(max_digits=MAX_DIGITS, decimal_places=DECIMAL_PLACES, **kwargs)


class Side(models.TextChoices):
    BUY = "buy"
    SELL = "sell"


class CashBalance(models.Model):
    """A user's paper cash in the quote currency; created with STARTING_CASH on first use."""

    owner = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="cash_balance")
    currency = models.CharField(max_length=12, default=CASH_CURRENCY)
    amount = _amount(default=STARTING_CASH)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"{self.owner}: {self.amount} {self.currency}"


class Bot(models.Model):
    class Status(models.TextChoices):
        STOPPED = "stopped"
        RUNNING = "running"
        PAUSED = "paused"
        ERROR = "error"

    class Strategy(models.TextChoices):
        DCA = "dca", "Dollar-cost averaging"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=100)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.DCA)
    symbol = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STOPPED, db_index=True)
    status_reason = models.CharField(max_length=300, blank=True, help_text="Why the bot is in error, if it is")
    params = models.JSONField(
        default=dict, blank=True, help_text='DCA: {"quote_amount": "100", "interval_seconds": 10}'
    )
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="When the strategy last placed an order")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["id"]

    def __str__(self) -> str:
        return f"{self.name} ({self.symbol}, {self.status})"


class Order(models.Model):
    class Type(models.TextChoices):
        MARKET = "market"
        LIMIT = "limit"

    class Status(models.TextChoices):
        NEW = "new"
        PARTIALLY_FILLED = "partially_filled"
        FILLED = "filled"
        CANCELED = "canceled"
        REJECTED = "rejected"

    OPEN_STATUSES = (Status.NEW, Status.PARTIALLY_FILLED)

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="orders")
    bot = models.ForeignKey(Bot, on_delete=models.SET_NULL, null=True, blank=True, related_name="orders")
    symbol = models.CharField(max_length=20)
    side = models.CharField(max_length=4, choices=Side.choices)
    order_type = models.CharField(max_length=10, choices=Type.choices)
    quantity = _amount()
    price = _amount(null=True, blank=True, help_text="Limit price; empty for market orders")
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.NEW)
    filled_quantity = _amount(default=Decimal(0))
    average_price = _amount(null=True, blank=True, help_text="Average fill price; empty until the first fill")
    reason = models.CharField(max_length=300, blank=True, help_text="Why the order was rejected")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["symbol", "status"], name="order_symbol_status"),
            models.Index(fields=["owner", "status"], name="order_owner_status"),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.side} {self.quantity} {self.symbol} {self.order_type} ({self.status})"

    @property
    def remaining_quantity(self) -> Decimal:
        if self.status not in self.OPEN_STATUSES:
            return Decimal(0)
        return self.quantity - self.filled_quantity

    @property
    def is_open(self) -> bool:
        return self.status in self.OPEN_STATUSES


class Fill(models.Model):
    order = models.ForeignKey(Order, on_delete=models.CASCADE, related_name="fills")
    price = _amount()
    quantity = _amount()
    executed_at = models.DateTimeField(db_index=True)
    trade_id = models.CharField(max_length=40, blank=True, help_text="The market trade that filled it, if any")

    class Meta:
        ordering = ["executed_at", "id"]

    def __str__(self) -> str:
        return f"{self.quantity} @ {self.price} (order #{self.order_id})"


class Position(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="positions")
    symbol = models.CharField(max_length=20)
    quantity = _amount(default=Decimal(0), help_text="Signed: negative is short")
    average_price = _amount(default=Decimal(0), help_text="Average entry price of the open quantity")
    realized_pnl = _amount(default=Decimal(0))
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [models.UniqueConstraint(fields=["owner", "symbol"], name="position_owner_symbol")]

    def __str__(self) -> str:
        return f"{self.owner} {self.symbol} {self.quantity}"


class RiskLimit(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="risk_limits")
    symbol = models.CharField(max_length=20)
    max_notional = _amount(help_text="Largest allowed |quantity| x last price, in the quote currency")
    breached = models.BooleanField(default=False, help_text="Alerted and not yet back under the limit")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["symbol"]
        constraints = [models.UniqueConstraint(fields=["owner", "symbol"], name="risklimit_owner_symbol")]

    def __str__(self) -> str:
        return f"{self.owner} {self.symbol} <= {self.max_notional}"
