"""Admin: users with their trading state, bots (changes and start/stop go through the services),
and read-only views of orders, fills, positions, risk limits and balances."""

from __future__ import annotations

from django import forms
from django.contrib import admin, messages
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin as BaseUserAdmin

from accounts import services
from accounts.exceptions import TradingError
from accounts.models import Balance, Bot, Fill, Order, Position, RiskLimit
from accounts.money import plain


class ReadOnlyAdmin(admin.ModelAdmin):
    """History and derived state: written only by the services."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = True

    def get_readonly_fields(self, request, obj=None):
        return self.fields  # shown, never edited here (and updated_at is not editable at all)

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


# --- users ---------------------------------------------------------------------------------------


class BotInline(ReadOnlyInline):
    model = Bot
    fields = ("name", "strategy", "symbol", "status", "last_run_at")


class PositionInline(ReadOnlyInline):
    model = Position
    fields = ("symbol", "quantity", "average_price", "realized_pnl", "updated_at")


class BalanceInline(ReadOnlyInline):
    model = Balance
    fields = ("asset", "free", "locked", "updated_at")
    show_change_link = False


class RiskLimitInline(ReadOnlyInline):
    model = RiskLimit
    fields = ("symbol", "max_notional", "breached", "updated_at")


User = get_user_model()
if admin.site.is_registered(User):
    admin.site.unregister(User)


@admin.register(User)
class UserAdmin(BaseUserAdmin):
    list_display = (*BaseUserAdmin.list_display, "is_active", "balances_summary", "bot_count")
    inlines = (BalanceInline, BotInline, PositionInline, RiskLimitInline)

    def get_queryset(self, request):
        return super().get_queryset(request).prefetch_related("balances")

    @admin.display(description="Balances (free / locked)")
    def balances_summary(self, user) -> str:
        held = [b for b in user.balances.all() if b.free or b.locked]
        return ", ".join(f"{b.asset} {plain(b.free)} / {plain(b.locked)}" for b in held) or "-"

    @admin.display(description="Bots")
    def bot_count(self, user) -> int:
        return user.bots.count()


# --- bots ----------------------------------------------------------------------------------------


class BotForm(forms.ModelForm):
    class Meta:
        model = Bot
        fields = ("owner", "name", "strategy", "symbol", "params")

    def clean(self):
        data = super().clean()
        try:
            data["name"], data["symbol"], data["params"] = services.bot_validate(
                name=data.get("name"),
                strategy=data.get("strategy"),
                symbol=data.get("symbol"),
                params=data.get("params"),
            )
        except TradingError as exc:
            self.add_error(exc.field if exc.field in self.fields else None, exc.message)
        return data


def _bot_action(service, verb: str, past: str):
    """An admin action that runs a bot service per selected bot and reports refusals."""

    def action(modeladmin, request, queryset):
        done = 0
        for bot in queryset:
            try:
                service(user_id=bot.owner_id, bot_id=bot.pk)
                done += 1
            except TradingError as exc:
                modeladmin.message_user(request, f"{bot.name}: {exc.message}", messages.ERROR)
        if done:
            modeladmin.message_user(request, f"{past} {done} bot(s).", messages.SUCCESS)

    action.short_description = f"{verb} selected bots"
    action.allowed_permissions = ("change",)  # staff with only view permission may not run it
    action.__name__ = f"bot_{verb.lower()}"
    return action


@admin.register(Bot)
class BotAdmin(admin.ModelAdmin):
    form = BotForm
    list_display = ("id", "name", "owner", "strategy", "symbol", "status", "last_run_at", "updated_at")
    list_filter = ("status", "strategy", "symbol")
    search_fields = ("name", "owner__username", "symbol")
    list_select_related = ("owner",)
    readonly_fields = ("status", "status_reason", "last_run_at", "created_at", "updated_at")
    actions = (
        _bot_action(services.bot_start, "Start", "Started"),
        _bot_action(services.bot_stop, "Stop", "Stopped"),
        _bot_action(services.bot_pause, "Pause", "Paused"),
    )

    def get_readonly_fields(self, request, obj=None):
        return (*self.readonly_fields, "owner", "strategy") if obj else self.readonly_fields

    def save_model(self, request, obj, form, change) -> None:
        data = form.cleaned_data
        if change:
            saved = services.bot_update(
                user_id=obj.owner_id, bot_id=obj.pk, name=data["name"], symbol=data["symbol"], params=data["params"]
            )
        else:
            saved = services.bot_create(
                user_id=data["owner"].pk,
                name=data["name"],
                strategy=data["strategy"],
                symbol=data["symbol"],
                params=data["params"],
            )
        obj.pk = saved.pk
        obj.refresh_from_db()


# --- read-only history ---------------------------------------------------------------------------


class FillInline(ReadOnlyInline):
    model = Fill
    fields = ("executed_at", "quantity", "price", "fee", "is_maker", "trade_id")
    show_change_link = False


@admin.register(Order)
class OrderAdmin(ReadOnlyAdmin):
    list_display = (
        "id",
        "owner",
        "symbol",
        "side",
        "order_type",
        "quantity",
        "price",
        "status",
        "filled_quantity",
        "average_price",
        "fee",
        "bot",
        "created_at",
    )
    list_filter = ("status", "side", "order_type", "symbol")
    search_fields = ("=id", "owner__username", "symbol")
    list_select_related = ("owner", "bot")
    date_hierarchy = "created_at"
    inlines = (FillInline,)


@admin.register(Position)
class PositionAdmin(ReadOnlyAdmin):
    list_display = ("owner", "symbol", "quantity", "average_price", "realized_pnl", "updated_at")
    list_filter = ("symbol",)
    search_fields = ("owner__username", "symbol")
    list_select_related = ("owner",)


@admin.register(RiskLimit)
class RiskLimitAdmin(ReadOnlyAdmin):
    list_display = ("owner", "symbol", "max_notional", "breached", "updated_at")
    list_filter = ("symbol", "breached")
    search_fields = ("owner__username", "symbol")
    list_select_related = ("owner",)


@admin.register(Balance)
class BalanceAdmin(ReadOnlyAdmin):
    list_display = ("owner", "asset", "free", "locked", "updated_at")
    list_filter = ("asset",)
    search_fields = ("owner__username", "asset")
    list_select_related = ("owner",)
