from django.conf import settings
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.exceptions import NotFound, ValidationError
from rest_framework.response import Response
from rest_framework.views import APIView

from sagaboard import idempotency
from sagaboard.kernel.events import POLICIES
from sagaboard.schema import AmountField, CurrencyIdField, HolderIdField, errors, order_id
from services.point.selectors import holder_exists

from .models import Order
from .services import place_order


class StatusChangeSerializer(serializers.Serializer):
    fromStatus = serializers.CharField(source="from_status")
    toStatus = serializers.CharField(source="to_status")
    eventId = serializers.UUIDField(source="event_id", allow_null=True)
    at = serializers.DateTimeField()


class OrderSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    holderId = serializers.CharField(source="holder_id")
    currencyId = serializers.CharField(source="currency_id")
    amount = serializers.IntegerField()
    policy = serializers.CharField()
    status = serializers.CharField()
    reason = serializers.CharField()
    deadline = serializers.IntegerField(help_text="ms since the epoch")
    createdAt = serializers.DateTimeField(source="created_at")
    updatedAt = serializers.DateTimeField(source="updated_at")


class PlaceOrderSerializer(serializers.Serializer):
    holderId = HolderIdField()
    currencyId = CurrencyIdField()
    amount = AmountField(highest=settings.SAGA_MAX_AMOUNT)
    policy = serializers.ChoiceField(POLICIES, default="safe")

    def validate_holderId(self, holder_id):
        # The web process may read the point service's table to give a clear 400 early; the point
        # service still decides for itself when the exchange arrives.
        if not holder_exists(holder_id):
            raise serializers.ValidationError(f"unknown holder {holder_id!r}: grant points first (POST /points)")
        return holder_id


class OrdersView(APIView):
    @extend_schema(summary="Every order", responses={200: OrderSerializer(many=True), **errors()})
    def get(self, request):
        return Response(OrderSerializer(Order.objects.all(), many=True).data)

    @extend_schema(summary="Place an order (starts a saga)", request=PlaceOrderSerializer, parameters=[idempotency.PARAMETER],
                   responses={201: OrderSerializer, **errors(413, 422)})
    @idempotency.idempotent(lambda view, request: "order")
    def post(self, request):
        command = PlaceOrderSerializer(data=request.data)
        command.is_valid(raise_exception=True)
        d = command.validated_data
        order = place_order(holder_id=d["holderId"], currency_id=d["currencyId"], amount=d["amount"], policy=d["policy"])
        return Response(OrderSerializer(order).data, status=status.HTTP_201_CREATED)


class OrderDetailSerializer(OrderSerializer):
    history = StatusChangeSerializer(source="changes", many=True, help_text="every status the order took, oldest first")


class OrderView(APIView):
    @extend_schema(summary="One order, with its status history", responses={200: OrderDetailSerializer, **errors(404)},
                   parameters=[OpenApiParameter("orderId", int, OpenApiParameter.PATH)])
    def get(self, request, orderId):
        try:
            pk = order_id(orderId)
        except ValidationError:  # the route takes any segment, so a wrong one is a 404 in JSON too
            raise NotFound(f"there is no order {orderId!r}") from None
        return Response(OrderDetailSerializer(get_object_or_404(Order, pk=pk)).data)
