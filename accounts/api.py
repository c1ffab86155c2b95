"""Trading REST API (DRF): input serializer -> service -> output serializer, nothing else.

Decimal values travel as strings both ways. Input accepts a JSON string in plain notation ("0.5")
or a JSON integer; a JSON number with a fraction (a float) is refused with a 400, because by the
time it is parsed it may no longer be the number the client meant. Output decimals are plain
strings without trailing zeros ("0.5", "50000"), the same text the WebSocket messages carry.
Each caller sees only its own objects: another user's order or bot is a 404, like a missing one.
"""

from __future__ import annotations

from rest_framework import exceptions, serializers, status
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.exceptions import InvalidInput, InvalidState, NotFound, TradingError
from accounts.models import Bot, Order
from accounts.money import DecimalParseError, parse_decimal
from realtime.protocol import decimal_str

# --- fields and serializers ----------------------------------------------------------------------


class DecimalString(serializers.Field):
    """A Decimal as a JSON string; input also takes JSON integers, never floats."""

    def to_internal_value(self, data):
        try:
            return parse_decimal(data)
        except DecimalParseError as exc:
            raise serializers.ValidationError(str(exc)) from None

    def to_representation(self, value):
        return decimal_str(value)


class OrderInput(serializers.Serializer):
    symbol = serializers.CharField(max_length=20)
    side = serializers.CharField(max_length=10)
    type = serializers.CharField(max_length=10)
    quantity = DecimalString()
    price = DecimalString(required=False, allow_null=True)


class OrderOutput(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    side = serializers.CharField()
    type = serializers.CharField(source="order_type")
    status = serializers.CharField()
    quantity = DecimalString()
    filled_quantity = DecimalString()
    remaining_quantity = DecimalString()
    price = DecimalString()
    average_price = DecimalString()
    fee = DecimalString()
    reason = serializers.CharField()
    bot_id = serializers.IntegerField(allow_null=True)
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()


class OrderListQuery(serializers.Serializer):
    status = serializers.CharField(required=False, help_text="open, or a comma list of statuses")
    symbol = serializers.CharField(required=False, max_length=20)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=selectors.MAX_LIST)

    def validate_status(self, value: str) -> list[str]:
        statuses = [s.strip() for s in value.split(",") if s.strip()]
        expanded = [x for s in statuses for x in (Order.OPEN_STATUSES if s == "open" else [s])]
        unknown = sorted(set(expanded) - set(Order.Status.values))
        if unknown:
            raise serializers.ValidationError(
                f"unknown status {', '.join(unknown)}; use open or any of {', '.join(Order.Status.values)}"
            )
        return expanded


class BotInput(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    strategy = serializers.CharField(max_length=20, default=Bot.Strategy.DCA)
    symbol = serializers.CharField(max_length=20)
    params = serializers.JSONField()


class PerformanceOutput(serializers.Serializer):
    total_pnl = DecimalString()
    win_rate = DecimalString()
    trades_today = serializers.IntegerField()
    realized_pnl = DecimalString()
    unrealized_pnl = DecimalString()
    fees = DecimalString()


class BotOutput(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()
    strategy = serializers.CharField()
    symbol = serializers.CharField()
    status = serializers.CharField()
    reason = serializers.CharField(source="status_reason")
    params = serializers.JSONField()
    performance = serializers.SerializerMethodField()
    last_run_at = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    updated_at = serializers.DateTimeField()

    def get_performance(self, bot: Bot) -> dict:
        return PerformanceOutput(selectors.bot_performance(bot=bot)).data


class PositionOutput(serializers.Serializer):
    symbol = serializers.CharField()
    quantity = DecimalString()
    average_price = DecimalString()
    market_price = DecimalString()
    market_value = DecimalString()
    unrealized_pnl = DecimalString()
    realized_pnl = DecimalString()
    fees = DecimalString()


class BalanceOutput(serializers.Serializer):
    asset = serializers.CharField()
    free = DecimalString()
    locked = DecimalString()


class PortfolioOutput(serializers.Serializer):
    currency = serializers.CharField()
    cash = DecimalString()
    total_value = DecimalString()
    unrealized_pnl = DecimalString()
    realized_pnl = DecimalString()
    fees = DecimalString()
    balances = BalanceOutput(many=True)
    positions = PositionOutput(many=True)


class CancelAllInput(serializers.Serializer):
    symbol = serializers.CharField(required=False, max_length=20)


class RiskLimitInput(serializers.Serializer):
    symbol = serializers.CharField(max_length=20)
    max_notional = DecimalString()


class RiskLimitOutput(serializers.Serializer):
    id = serializers.IntegerField()
    symbol = serializers.CharField()
    max_notional = DecimalString()
    breached = serializers.BooleanField()
    updated_at = serializers.DateTimeField()


# --- errors --------------------------------------------------------------------------------------


class InvalidStateError(exceptions.APIException):
    status_code = status.HTTP_400_BAD_REQUEST
    default_code = "invalid_state"


def _api_error(exc: TradingError) -> exceptions.APIException:
    if isinstance(exc, NotFound):
        return exceptions.NotFound(exc.message)
    if isinstance(exc, InvalidState):
        return InvalidStateError(exc.message)
    if isinstance(exc, InvalidInput) and exc.field:
        return exceptions.ValidationError({exc.field: [exc.message]})
    return exceptions.ValidationError({"non_field_errors": [exc.message]})


class TradingView(APIView):
    """Domain refusals become DRF's error shape: 400 for input and state, 404 for not found."""

    def handle_exception(self, exc):
        if isinstance(exc, TradingError):
            exc = _api_error(exc)
        return super().handle_exception(exc)

    @staticmethod
    def valid(serializer_class: type[serializers.Serializer], data) -> dict:
        serializer = serializer_class(data=data)
        serializer.is_valid(raise_exception=True)
        return serializer.validated_data


# --- views ---------------------------------------------------------------------------------------


class OrderListCreate(TradingView):
    def get(self, request: Request) -> Response:
        query = self.valid(OrderListQuery, request.query_params)
        orders = selectors.order_list(
            user_id=request.user.pk,
            statuses=query.get("status"),
            symbol=query.get("symbol"),
            limit=query.get("limit", selectors.DEFAULT_LIST),
        )
        return Response(OrderOutput(orders, many=True).data)

    def post(self, request: Request) -> Response:
        data = self.valid(OrderInput, request.data)
        order = services.order_place(
            user_id=request.user.pk,
            symbol=data["symbol"],
            side=data["side"],
            order_type=data["type"],
            quantity=data["quantity"],
            price=data.get("price"),
        )
        return Response(OrderOutput(order).data, status=status.HTTP_201_CREATED)


class OrderDetail(TradingView):
    def get(self, request: Request, order_id: int) -> Response:
        return Response(OrderOutput(selectors.order_get(user_id=request.user.pk, order_id=order_id)).data)


class OrderCancel(TradingView):
    def post(self, request: Request, order_id: int) -> Response:
        order = services.order_cancel(user_id=request.user.pk, order_id=order_id)
        return Response(OrderOutput(order).data)


class OrderCancelAll(TradingView):
    """POST /api/orders/cancel-all/ {"symbol"?}: cancel the caller's open orders (of one symbol)."""

    def post(self, request: Request) -> Response:
        data = self.valid(CancelAllInput, request.data)
        canceled = services.orders_cancel_all(user_id=request.user.pk, symbol=data.get("symbol"))
        return Response({"canceled": len(canceled), "orders": OrderOutput(canceled, many=True).data})


class BotListCreate(TradingView):
    def get(self, request: Request) -> Response:
        return Response(BotOutput(selectors.bot_list(user_id=request.user.pk), many=True).data)

    def post(self, request: Request) -> Response:
        data = self.valid(BotInput, request.data)
        bot = services.bot_create(user_id=request.user.pk, **data)
        return Response(BotOutput(bot).data, status=status.HTTP_201_CREATED)


class BotDetail(TradingView):
    def get(self, request: Request, bot_id: int) -> Response:
        return Response(BotOutput(selectors.bot_get(user_id=request.user.pk, bot_id=bot_id)).data)


class BotAction(TradingView):
    """POST /api/bots/{id}/start|stop|pause/"""

    action_service = None

    def post(self, request: Request, bot_id: int) -> Response:
        bot = type(self).action_service(user_id=request.user.pk, bot_id=bot_id)
        return Response(BotOutput(bot).data)


class BotStart(BotAction):
    action_service = staticmethod(services.bot_start)


class BotStop(BotAction):
    action_service = staticmethod(services.bot_stop)


class BotPause(BotAction):
    action_service = staticmethod(services.bot_pause)


class PortfolioView(TradingView):
    def get(self, request: Request) -> Response:
        valuation = selectors.portfolio_get(user_id=request.user.pk)
        return Response(PortfolioOutput(valuation).data)


class RiskLimitListSet(TradingView):
    def get(self, request: Request) -> Response:
        return Response(RiskLimitOutput(selectors.risk_limit_list(user_id=request.user.pk), many=True).data)

    def post(self, request: Request) -> Response:
        data = self.valid(RiskLimitInput, request.data)
        limit, created = services.risk_limit_set(user_id=request.user.pk, **data)
        return Response(RiskLimitOutput(limit).data, status=status.HTTP_201_CREATED if created else status.HTTP_200_OK)
