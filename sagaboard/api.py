"""Shared API pieces: the error format, and the views that read across services."""
from __future__ import annotations

import functools
from decimal import Decimal
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpResponse, JsonResponse
from django.utils.html import escape
from django.views.decorators.csrf import csrf_exempt
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.response import Response
from rest_framework.views import APIView, exception_handler as drf_exception_handler

from sagaboard import consistency, corrections, idempotency, supervision
from sagaboard.access import OperatorAccess
from sagaboard.kernel.models import DeadLetter, InboxRecord, ProcessHeartbeat
from sagaboard.schema import HolderIdField, IdField, PointsField, ReasonField, errors, order_id
from services.monitor.api import EventLogSerializer
from services.monitor.models import EventLog

HEARTBEAT_FRESH_SECONDS = 5  # processes beat every second; older rows are from a killed process


def fresh_heartbeats(service: str, *fields: str) -> list[dict]:
    """The heartbeats of a service's live processes (a killed process leaves a stale row)."""
    return list(ProcessHeartbeat.live(service, HEARTBEAT_FRESH_SECONDS).values(*fields))


def error_response(request, status: int, detail: str, **headers) -> HttpResponse:
    """An error outside DRF's views, in the API's error format: {"detail": ...} in JSON, or a
    short page for a browser (it asks for text/html). Django's own were HTML pages for everyone."""
    if "text/html" in request.headers.get("Accept", ""):
        title = HTTPStatus(status).phrase
        response = HttpResponse(f"<!doctype html><title>{title}</title><h1>{title}</h1><p>{escape(detail)}</p>", status=status)
    else:
        response = JsonResponse({"detail": detail}, status=status)
    for name, value in headers.items():
        response[name] = value
    return response


@csrf_exempt  # a POST to a path that does not exist is a 404, not a CSRF failure
def unknown_path(request, *args, **kwargs):
    """Any path no route takes: a 404 that says so."""
    return error_response(request, 404, f"no such path: {request.path[:200]}")


def not_found(request, exception=None):
    """Django's handler404 (production mode): an Http404 raised by a view, answered like an unknown path."""
    return unknown_path(request)


def bad_request(request, exception=None):
    """Django's handler400: a request Django refuses before any view (a Host not in ALLOWED_HOSTS, a
    malformed cookie or body), in the API's error format."""
    return error_response(request, 400, f"bad request: {str(exception)[:200] or 'refused'}")


def csrf_failure(request, reason=""):
    """CSRF_FAILURE_VIEW: a write without its CSRF token (a session's) is a 403 that says so."""
    return error_response(request, 403, f"CSRF check failed: {reason}. Send the X-CSRFToken header with a session, or use a token.")


def allow(*methods: str):
    """A plain Django view's methods (the dashboard's): any other is a 405 in the API's error
    format with an Allow header (Django's require_GET answered an empty HTML 405)."""

    def decorate(view):
        @functools.wraps(view)
        def wrapped(request, *args, **kwargs):
            if request.method not in methods:
                return error_response(request, 405, f"{request.method[:20]} is not allowed here; use {' or '.join(methods)}",
                                      Allow=", ".join(methods))
            return view(request, *args, **kwargs)

        # a view that only reads changes nothing on a POST: its answer is the 405, not a CSRF 403
        return csrf_exempt(wrapped) if set(methods) <= {"GET", "HEAD"} else wrapped

    return decorate


def exception_handler(exc, context):
    """DRF's errors, with three changes: every body is JSON that says what is wrong, a wrong
    content type is a 400 like any other bad input (the contract of the walkthrough API), and a
    body over DATA_UPLOAD_MAX_MEMORY_SIZE is a 413 in JSON (Django answered an HTML 400)."""
    if isinstance(exc, RequestDataTooBig):
        return Response({"detail": f"the body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes"},
                        status=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE)
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
        responses={200: ConsistencySerializer, **errors()},
    )
    def get(self, request):
        oid = order_id(request.query_params.get("orderId"))
        anomalies = consistency.check([oid] if oid is not None else None)
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
    replayedAt = serializers.DateTimeField(source="replayed_at", allow_null=True)
    replayedBy = serializers.CharField(source="replayed_by")


class DeadLettersView(APIView):
    @extend_schema(summary="Records a service could not take, with the reason",
                   responses={200: DeadLetterSerializer(many=True), **errors()})
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


class SupervisedProcessSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField(help_text="supervisord's state: RUNNING, STOPPED, ...")
    pid = serializers.IntegerField()


class HeartbeatSerializer(serializers.Serializer):
    process = serializers.CharField()
    pid = serializers.IntegerField()
    seenAt = serializers.DateTimeField(source="seen_at")
    assignment = serializers.ListField(child=serializers.IntegerField(), help_text="partitions it consumes")
    lag = serializers.IntegerField()
    handled = serializers.IntegerField()
    parkedSince = serializers.DateTimeField(source="parked_since", allow_null=True,
                                            help_text="idle: waiting for a doorbell since then (null while it fetches)")


class ServiceStateSerializer(serializers.Serializer):
    name = serializers.CharField()
    state = serializers.CharField(help_text="running, stopped, unsupervised, or the supervisord states")
    processes = SupervisedProcessSerializer(many=True)
    heartbeats = HeartbeatSerializer(many=True)


class ServicesView(APIView):
    @extend_schema(summary="Each service: supervised processes and what its live processes report (assignment, lag)",
                   responses={200: ServiceStateSerializer(many=True), **errors()})
    def get(self, request):
        processes = supervision.processes()
        result = []
        for service in settings.SERVICES:
            beats = fresh_heartbeats(service, "process", "pid", "seen_at", "assignment", "lag", "handled", "parked_since")
            supervised = [p for p in processes if p["group"] == service]
            result.append({
                "name": service,
                "state": _state(supervised),
                "processes": [{"name": p["name"], "state": p["statename"], "pid": p["pid"]} for p in supervised],
                "heartbeats": HeartbeatSerializer(beats, many=True).data,
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
    effect = serializers.JSONField(allow_null=True, help_text=(
        "what the handler changed, recorded by the service in the transaction of the change: "
        '{"status": [from, to]}, {"points": "-100.00", "balance": "9900.00"} (points as decimal strings), '
        '{"exchange": "created", "point": "100.00"} or {"exchange": "removed"}, '
        '{"deadline": "armed", "dueAt": ms} or {"deadline": "disarmed"}; null: nothing changed'))
    publishedAtMs = serializers.IntegerField(source="published_at_ms", allow_null=True,
                                             help_text="the Kafka record's timestamp, ms since the epoch")
    receivedAtMs = serializers.IntegerField(source="received_at_ms", allow_null=True,
                                            help_text="when the service's consumer took the record, ms since the epoch")


class OutcomesView(APIView):
    @extend_schema(
        summary="How each service handled the events of one order: applied, ignored (late) or dropped (expired)",
        parameters=[OpenApiParameter("orderId", int, required=True)],
        responses={200: OutcomeSerializer(many=True), **errors()},
    )
    def get(self, request):
        oid = order_id(request.query_params.get("orderId"), required=True)
        return Response(OutcomeSerializer(inbox_records(oid), many=True).data)


def inbox_records(oid: int) -> list[InboxRecord]:
    """Every service's inbox records of one order (each with its `.service`), oldest first."""
    records = []
    for service in settings.SERVICES:
        for record in InboxRecord.objects.using(service).filter(order_id=oid):
            record.service = service
            records.append(record)
    records.sort(key=lambda r: r.handled_at)
    return records


# --- corrections (sagaboard/corrections.py): staff only in production -----------------------------
class RejectOrderSerializer(serializers.Serializer):
    orderId = IdField()
    reason = ReasonField()


class AdjustBalanceSerializer(serializers.Serializer):
    holderId = HolderIdField(help_text="a holder with an account (granted points before)")
    point = PointsField(lowest=-Decimal(settings.SAGA_MAX_AMOUNT), highest=Decimal(settings.SAGA_MAX_AMOUNT), nonzero=True,
                        help_text="added to the balance; negative takes points away (never below 0)")
    reason = ReasonField()
    orderId = IdField(required=False, allow_null=True,
                                       help_text="the order it corrects (it then shows on that order's timeline)")


class ReplayDeadLetterSerializer(serializers.Serializer):
    service = serializers.ChoiceField(settings.SERVICES)
    deadLetterId = IdField()
    reason = ReasonField()


class CorrectionResultSerializer(serializers.Serializer):
    operator = serializers.CharField()
    eventId = serializers.UUIDField(help_text="the event the correction emitted or re-delivered")
    eventType = serializers.CharField(help_text="its type: OrderRejected, PointsAdjusted, or the replayed event's")


class CorrectionView(APIView):
    """GET lists the corrections of this kind that the monitor recorded; POST makes one (staff)."""

    permission_classes = [OperatorAccess]
    event_type = ""
    command: type[serializers.Serializer]

    def recorded(self):
        return EventLog.objects.filter(event_type=self.event_type)

    def get(self, request):
        return Response(EventLogSerializer(self.recorded(), many=True).data)

    def owner(self, request) -> str | None:
        """The database the correction writes to (its Idempotency-Key is kept there)."""
        raise NotImplementedError

    @idempotency.idempotent(lambda view, request: view.owner(request))
    def post(self, request):
        command = self.command(data=request.data)
        command.is_valid(raise_exception=True)
        operator = corrections.operator_name(request.user)
        try:
            event = self.correct(command.validated_data, operator)
        except corrections.CorrectionRefused as exc:
            return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)
        # the event emitted (OrderRejected, PointsAdjusted) or re-delivered (a replay's), with its own type
        return Response({"operator": operator, "eventId": event.eventId, "eventType": event.eventType}, status=status.HTTP_202_ACCEPTED)


def _correction_schema(cls):
    summary = cls.__doc__.strip().splitlines()[0]
    cls.get = extend_schema(summary=f"Corrections recorded: {cls.event_type}",
                            responses={200: EventLogSerializer(many=True), **errors()})(cls.get)
    cls.post = extend_schema(summary=summary, description=cls.__doc__, request=cls.command, parameters=[idempotency.PARAMETER],
                             responses={202: CorrectionResultSerializer, **errors(409, 413, 422)})(cls.post)
    return cls


@_correction_schema
class RejectOrderView(CorrectionView):
    """Reject a pending or inconsistent order; exchange and point compensate through the saga.

    The order becomes REJECTED BY OPERATOR and OrderRejected (with the operator and reason) is emitted."""

    event_type = "OrderRejected"
    command = RejectOrderSerializer

    def owner(self, request):
        return "order"

    def recorded(self):
        return super().recorded().filter(payload__has_key="operator")

    def correct(self, d, operator):
        return corrections.reject_order(d["orderId"], operator=operator, reason=d["reason"])


@_correction_schema
class AdjustBalanceView(CorrectionView):
    """Adjust a holder's balance with a reason (PointsAdjusted, applied once by the point service)."""

    event_type = "PointsAdjusted"
    command = AdjustBalanceSerializer

    def owner(self, request):
        return "point"

    def correct(self, d, operator):
        return corrections.adjust_balance(d["holderId"], d["point"], operator=operator, reason=d["reason"],
                                          order_id=d.get("orderId"))


@_correction_schema
class ReplayDeadLetterView(CorrectionView):
    """Re-deliver a dead-lettered event through the topic, with a DeadLetterReplayed saying who and why."""

    event_type = "DeadLetterReplayed"
    command = ReplayDeadLetterSerializer

    def owner(self, request):
        service = request.data.get("service") if isinstance(request.data, dict) else None
        return service if service in settings.SERVICES else None

    def correct(self, d, operator):
        return corrections.replay_dead_letter(d["service"], d["deadLetterId"], operator=operator, reason=d["reason"])
