from django.contrib import admin

from marketdata.models import Symbol


@admin.register(Symbol)
class SymbolAdmin(admin.ModelAdmin):
    """Enabling or disabling a symbol here changes what the worker streams within its refresh interval."""

    list_display = ("name", "base_asset", "quote_asset", "enabled", "tick_size", "step_size", "updated_at")
    list_filter = ("enabled", "quote_asset")
    list_editable = ("enabled",)
    search_fields = ("name", "base_asset", "quote_asset")
