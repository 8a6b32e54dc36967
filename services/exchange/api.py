from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sagaboard.schema import PointsField, errors

from .models import Exchange


class ExchangeSerializer(serializers.Serializer):
    orderId = serializers.IntegerField(source="order_id")
    holderId = serializers.CharField(source="holder_id")
    currencyId = serializers.CharField(source="currency_id")
    amount = serializers.IntegerField()
    point = PointsField()
    createdAt = serializers.DateTimeField(source="created_at")


class ExchangesView(APIView):
    @extend_schema(summary="Exchanges that stand (a compensated one is removed)", responses={200: ExchangeSerializer(many=True), **errors()})
    def get(self, request):
        return Response(ExchangeSerializer(Exchange.objects.all(), many=True).data)
