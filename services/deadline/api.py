from drf_spectacular.utils import extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sagaboard.schema import errors

from .models import Deadline


class DeadlineSerializer(serializers.Serializer):
    orderId = serializers.IntegerField(source="order_id")
    dueAt = serializers.IntegerField(source="due_at", help_text="ms since the epoch")
    status = serializers.CharField()
    firedAt = serializers.IntegerField(source="fired_at", allow_null=True)
    policy = serializers.CharField()


class DeadlinesView(APIView):
    @extend_schema(summary="Every deadline: armed, fired or disarmed (reading it wakes nothing)", responses={200: DeadlineSerializer(many=True), **errors()})
    def get(self, request):
        return Response(DeadlineSerializer(Deadline.objects.all(), many=True).data)
