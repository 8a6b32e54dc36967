"""Shared API pieces: the error format, and the views that read across services."""
from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler as drf_exception_handler

from sagaboard import consistency, supervision
from sagaboard.kernel.models import DeadLetter, InboxRecord, ProcessHeartbeat

HEARTBEAT_FRESH_SECONDS = 5  # processes beat every second; older rows are from a killed process


def exception_handler(exc, context):
    """DRF's errors, with two changes: every body is JSON that says what is wrong, and a wrong
    content type is a 400 like any other bad input (the contract of the walkthrough API)."""
    if isinstance(exc, exceptions.UnsupportedMediaType):
        exc = exceptions.ParseError(f"{exc.detail} Send JSON with Content-Type: application/json.")
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(response.data, list):
        response.data = {"detail": response.data}
    return response


class AnomalySerializer(serializers.Serializer):
    rule = serializers.CharField()
    evidence = serializers.CharField()
    orderId = serializers.IntegerField(allow_null=True)
    holderId = serializers.CharField(allow_null=True)


class ConsistencySerializer(serializers.Serializer):
    count = serializers.IntegerField()
    anomalies = AnomalySerializer(many=True)


class ConsistencyView(APIView):
    @extend_schema(
        summary="Anomalies across services",
        description="Settled orders that break a consistency rule, and holders whose balance does not add up.",
        parameters=[OpenApiParameter("orderId", int, description="check only this order")],
        responses=ConsistencySerializer,
    )
    def get(self, request):
        order_id = request.query_params.get("orderId")
        if order_id is not None and not order_id.isdigit():
            raise exceptions.ValidationError({"orderId": ["must be a positive integer"]})
        anomalies = consistency.check([int(order_id)] if order_id else None)
        return Response({"count": len(anomalies), "anomalies": [a.as_dict() for a in anomalies]})


class DeadLetterSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    service = serializers.CharField()
    topic = serializers.CharField()
    partition = serializers.IntegerField()
    offset = serializers.IntegerField()
    error = serializers.CharField()
    value = serializers.CharField(allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")


class DeadLettersView(APIView):
    @extend_schema(summary="Records a service could not take, with the reason", responses=DeadLetterSerializer(many=True))
    def get(self, request):
        letters = []
        for service in settings.SERVICES:
            for letter in DeadLetter.objects.using(service).all():
                letter.service = service
                raw = bytes(letter.value) if letter.value is not None else None
                letter.value = raw.decode("utf-8", "replace")[:2000] if raw is not None else None
                letters.append(letter)
        letters.sort(key=lambda letter: letter.created_at)
        return Response(DeadLetterSerializer(letters, many=True).data)


class ServicesView(APIView):
    @extend_schema(summary="Each service: supervised processes and what its live processes report (assignment, lag)")
    def get(self, request):
        processes = supervision.processes()
        fresh = timezone.now() - timedelta(seconds=HEARTBEAT_FRESH_SECONDS)
        result = []
        for service in settings.SERVICES:
            beats = list(ProcessHeartbeat.objects.using(service).filter(seen_at__gte=fresh).values(
                "process", "pid", "seen_at", "assignment", "lag", "handled"))
            supervised = [p for p in processes if p["group"] == service]
            result.append({
                "name": service,
                "state": _state(supervised),
                "processes": [{"name": p["name"], "state": p["statename"], "pid": p["pid"]} for p in supervised],
                "heartbeats": beats,
            })
        return Response(result)


def _state(supervised: list[dict]) -> str:
    states = {p["statename"] for p in supervised}
    if not states:
        return "unsupervised"
    return "running" if states == {"RUNNING"} else "stopped" if states <= {"STOPPED", "EXITED", "FATAL"} else ",".join(sorted(states)).lower()


class OutcomeSerializer(serializers.Serializer):
    service = serializers.CharField()
    eventId = serializers.UUIDField(source="event_id")
    eventType = serializers.CharField(source="event_type")
    outcome = serializers.ChoiceField([InboxRecord.APPLIED, InboxRecord.IGNORED, InboxRecord.DROPPED])
    reason = serializers.CharField()
    handledAt = serializers.DateTimeField(source="handled_at")


class OutcomesView(APIView):
    @extend_schema(
        summary="How each service handled the events of one order: applied, ignored (late) or dropped (expired)",
        parameters=[OpenApiParameter("orderId", int, required=True)],
        responses=OutcomeSerializer(many=True),
    )
    def get(self, request):
        order_id = request.query_params.get("orderId", "")
        if not order_id.isdigit():
            raise exceptions.ValidationError({"orderId": ["required, a positive integer"]})
        records = []
        for service in settings.SERVICES:
            for record in InboxRecord.objects.using(service).filter(order_id=int(order_id)):
                record.service = service
                records.append(record)
        records.sort(key=lambda r: r.handled_at)
        return Response(OutcomeSerializer(records, many=True).data)
