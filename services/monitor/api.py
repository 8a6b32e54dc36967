from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers
from rest_framework.response import Response
from rest_framework.views import APIView

from sagaboard.schema import IdField, errors

from .models import EventLog


class EventLogSerializer(serializers.Serializer):
    eventId = serializers.UUIDField(source="event_id")
    eventType = serializers.CharField(source="event_type")
    orderId = serializers.IntegerField(source="order_id", allow_null=True)
    timestamp = serializers.IntegerField()
    deadline = serializers.IntegerField(allow_null=True)
    causationId = serializers.UUIDField(source="causation_id", allow_null=True)
    source = serializers.CharField()
    policy = serializers.CharField()
    payload = serializers.JSONField()
    topic = serializers.CharField()
    partition = serializers.IntegerField()
    offset = serializers.IntegerField()


class EventFilter(serializers.Serializer):
    orderId = IdField(required=False)
    type = serializers.CharField(required=False)
    source = serializers.CharField(required=False)
    limit = serializers.IntegerField(required=False, min_value=1, max_value=10_000, default=1000)


class EventsView(APIView):
    @extend_schema(
        summary="Events from the monitor's event log, in the order they were recorded",
        parameters=[
            OpenApiParameter("orderId", int, description="only the events of this order (its saga)"),
            OpenApiParameter("type", str, description="only this event type"),
            OpenApiParameter("source", str, description="only events emitted by this service"),
            OpenApiParameter("limit", int, description="at most this many (newest first cut), default 1000"),
        ],
        responses={200: EventLogSerializer(many=True), **errors()},
    )
    def get(self, request):
        query = EventFilter(data=request.query_params)
        query.is_valid(raise_exception=True)
        q = query.validated_data
        events = EventLog.objects.all()
        if "orderId" in q:
            events = events.filter(order_id=q["orderId"])
        if "type" in q:
            events = events.filter(event_type=q["type"])
        if "source" in q:
            events = events.filter(source=q["source"])
        newest = list(events.order_by("-id")[: q["limit"]])
        return Response(EventLogSerializer(reversed(newest), many=True).data)
