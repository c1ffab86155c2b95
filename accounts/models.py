"""Paper-trading state per user: balances, bots, orders and their fills, positions, risk limits.

Every amount is an AmountField: DecimalField(max_digits=30, decimal_places=12) stored exactly on
every database (see AmountField and accounts/money.py). Symbols are stored by name
(marketdata.Symbol.name): orders and fills are history and must outlive a symbol being disabled.
No business logic here: writes go through accounts/services/.
"""

from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import models

from accounts.money import DECIMAL_PLACES, MAX_DIGITS, from_sortable, to_sortable
from realtime import protocol


class AmountField(models.DecimalField):
    """DecimalField(30, 12), exact on every database.

    PostgreSQL stores numeric(30, 12) as it is. SQLite would keep only 15 significant digits of a
    numeric column, so there the value is stored as fixed-width text that sorts like the number
    (money.to_sortable): comparisons, ordering and indexes in SQL still work, and every digit
    survives. Arithmetic on these columns happens in Python, never in SQL.
    """

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("max_digits", MAX_DIGITS)
        kwargs.setdefault("decimal_places", DECIMAL_PLACES)
        super().__init__(*args, **kwargs)

    def get_internal_type(self) -> str:
        # Not "DecimalField": SQLite's backend would convert the text through a float on the way out.
        return "AmountField"

    def db_type(self, connection) -> str:
        if connection.vendor == "sqlite":
            return "text"
        return connection.data_types["DecimalField"] % self.db_type_parameters(connection)

    def rel_db_type(self, connection) -> str:
        return self.db_type(connection)

    def get_db_prep_value(self, value, connection, prepared=False):
        if connection.vendor != "sqlite":
            return super().get_db_prep_value(value, connection, prepared)
        if not prepared:
            value = self.get_prep_value(value)
        if value is None or hasattr(value, "as_sql"):
            return value
        return to_sortable(Decimal(value))

    def from_db_value(self, value, expression, connection):
        if value is None:
            return None
        if isinstance(value, str):
            return from_sortable(value)
        return Decimal(value)


def _amount(**kwargs) -> AmountField:
    return AmountField(**kwargs)


class Side(models.TextChoices):
    BUY = protocol.Side.BUY.value, "Buy"
    SELL = protocol.Side.SELL.value, "Sell"


class Balance(models.Model):
    """One asset of a user: free to use, and locked by open orders. The quote asset (USDT) starts
    at STARTING_CASH when first used; other assets at 0."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="balances")
    asset = models.CharField(max_length=12)
    free = _amount(default=Decimal(0))
    locked = _amount(default=Decimal(0), help_text="Reserved by open orders")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["asset"]
        constraints = [models.UniqueConstraint(fields=["owner", "asset"], name="balance_owner_asset")]

    def __str__(self) -> str:
        return f"{self.owner}: {self.asset} {self.free} free, {self.locked} locked"


class Bot(models.Model):
    class Status(models.TextChoices):
        STOPPED = "stopped"
        RUNNING = "running"
        PAUSED = "paused"
        ERROR = "error"

    class Strategy(models.TextChoices):
        DCA = "dca", "Dollar-cost averaging"
        GRID = "grid", "Grid"

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="bots")
    name = models.CharField(max_length=100)
    strategy = models.CharField(max_length=20, choices=Strategy.choices, default=Strategy.DCA)
    symbol = models.CharField(max_length=20)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.STOPPED, db_index=True)
    status_reason = models.CharField(max_length=300, blank=True, help_text="Why the bot is in error, if it is")
    params = models.JSONField(
        default=dict,
        blank=True,
        help_text='DCA: {"quote_amount": "100", "interval_seconds": 10}; grid: {"lower": "45000", '
        '"upper": "55000", "levels": 11, "quantity_per_level": "0.001"}',
    )
    last_run_at = models.DateTimeField(null=True, blank=True, help_text="When the strategy last placed an order")
    # Performance, updated by each fill of the bot's orders (accounts.bots.performance_apply).
    position_quantity = _amount(default=Decimal(0))
    position_cost = _amount(default=Decimal(0))
    realized_pnl = _amount(default=Decimal(0), help_text="Gross, before fees")
    fees_paid = _amount(default=Decimal(0))
    closing_fills = models.PositiveIntegerField(default=0)
    winning_fills = models.PositiveIntegerField(default=0)
    fills_day = models.DateField(null=True, blank=True)
    fills_today = models.PositiveIntegerField(default=0)
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
    fee = _amount(default=Decimal(0), help_text="Fees paid on its fills, in the quote asset")
    reserved = _amount(
        default=Decimal(0), help_text="Still locked for it: quote asset for a buy, base asset for a sell"
    )
    reason = models.CharField(max_length=300, blank=True, help_text="Why the order was rejected or canceled")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(fields=["symbol", "status"], name="order_symbol_status"),
            models.Index(fields=["owner", "status"], name="order_owner_status"),
            # Paper matching asks for the open orders of one side a trade's price crosses: the cost
            # follows the orders that cross, not all open orders (a plain index: SQLite does not use
            # a partial one for a query with bound parameters).
            models.Index(fields=["symbol", "side", "status", "price"], name="order_resting_price"),
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
    fee = _amount(default=Decimal(0))
    is_maker = models.BooleanField(default=False, help_text="A resting order filled by a trade (maker fee)")
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
    cost = _amount(default=Decimal(0), help_text="What the open quantity cost (signed like it), fees apart")
    realized_pnl = _amount(default=Decimal(0), help_text="Gross, before fees")
    fees_paid = _amount(default=Decimal(0))
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
