"""Operators' corrections (the seed's fix 3, made safe): they go through the saga, never as silent
row edits. Each one needs an operator and a reason, and is an event on the topic, so the monitor
records it and it shows on the order's timeline. Admin actions and the /corrections API call these.

- reject_order: a PENDING order, or a settled one the checker finds inconsistent, becomes
  REJECTED BY OPERATOR; its OrderRejected drives the normal chained compensation
  (exchange undoes → ExchangeCompensated → point refunds → PointUseCompensated).
- adjust_balance: emits PointsAdjusted, which the point service applies once (inbox) and the
  checker's balance rule counts.
- replay_dead_letter: re-delivers a dead-lettered event through the topic, the normal path, with a
  DeadLetterReplayed event saying who and why; services that already applied it skip it (inbox).
"""
from __future__ import annotations

from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from sagaboard import consistency
from sagaboard.kernel import fields, outbox
from sagaboard.kernel.events import Event, InvalidEvent
from sagaboard.kernel.models import DeadLetter, OutboxMessage
from services.order.models import PENDING, REJECTED_OPERATOR, Order
from services.order.services import reject_by_operator
from services.point.models import Account


class CorrectionRefused(Exception):
    """The correction does not apply (not found, nothing to correct, bad input); says why."""


def operator_name(user) -> str:
    """Who did it: the logged-in user, or 'anonymous' in development mode (SAGA_OPEN_ACCESS)."""
    if user is not None and user.is_authenticated:
        return user.get_username()
    return "anonymous"


def _reason(reason) -> str:
    """The reason by its one rule (kernel/fields.py), for callers that did not check it."""
    try:
        return fields.reason(reason)
    except fields.FieldInvalid as exc:
        raise CorrectionRefused(f"reason: {exc}") from None


def reject_order(order_id: int, *, operator: str, reason: str) -> Event:
    reason = _reason(reason)
    order = Order.objects.filter(pk=order_id).first()
    if order is None:
        raise CorrectionRefused(f"there is no order {order_id}")
    if order.status == REJECTED_OPERATOR:
        raise CorrectionRefused(f"order {order_id} was already rejected by an operator")
    if order.status != PENDING:
        anomalies = consistency.check([order_id])
        if not anomalies:
            raise CorrectionRefused(
                f"order {order_id} is {order.status} and consistent (or still settling): nothing to correct"
            )
    rejection = reject_by_operator(order_id=order_id, expected_status=order.status, operator=operator, reason=reason)
    if rejection is None:
        raise CorrectionRefused(f"order {order_id} changed status meanwhile; look at it again")
    return rejection


def adjust_balance(holder_id: str, point: Decimal, *, operator: str, reason: str, order_id: int | None = None) -> Event:
    """PointsAdjusted for an existing holder: `point` (a Decimal, kernel/fields.py's rule, not 0,
    at most SAGA_MAX_AMOUNT either way) is added to the balance by the point service. Refused up
    front (CorrectionRefused) for a holder without an account, or a take of more than the balance
    shows now; the point service re-checks when it applies it (PointsAdjustmentFailed)."""
    reason = _reason(reason)
    try:
        fields.HOLDER_ID.clean(holder_id)
        point = fields.points(point, lowest=-Decimal(settings.SAGA_MAX_AMOUNT), highest=Decimal(settings.SAGA_MAX_AMOUNT), nonzero=True)
    except fields.FieldInvalid as exc:
        raise CorrectionRefused(str(exc)) from None
    account = Account.objects.filter(holder_id=holder_id).first()
    if account is None:
        raise CorrectionRefused(f"holder {holder_id!r} has no account: adjustments apply to holders granted points before")
    if point < 0 and account.point < -point:
        raise CorrectionRefused(f"holder {holder_id!r} has {fields.format_points(account.point)} points; "
                                f"cannot take {fields.format_points(-point)}")
    if order_id is not None:
        owner = Order.objects.filter(pk=order_id).values_list("holder_id", flat=True).first()
        if owner is None:
            raise CorrectionRefused(f"there is no order {order_id}")
        if owner != holder_id:  # it would show on another holder's timeline
            raise CorrectionRefused(f"order {order_id} is holder {owner!r}'s, not {holder_id!r}'s")
    payload = {"holderId": holder_id, "point": fields.format_points(point), "operator": operator, "reason": reason}
    with transaction.atomic(using="point"):
        # the point service applies it (and re-checks the balance) when it consumes the event
        return outbox.emit("point", Event(eventType="PointsAdjusted", orderId=order_id, source="point", payload=payload))


def replay_dead_letter(service: str, letter_id: int, *, operator: str, reason: str) -> Event:
    reason = _reason(reason)
    if service not in settings.SERVICES:
        raise CorrectionRefused(f"unknown service {service!r}")
    with transaction.atomic(using=service):
        letter = DeadLetter.objects.using(service).select_for_update().filter(pk=letter_id).first()
        if letter is None:
            raise CorrectionRefused(f"{service} has no dead letter {letter_id}")
        if letter.replayed_at is not None:
            raise CorrectionRefused(f"dead letter {letter_id} of {service} was already replayed by {letter.replayed_by}")
        try:
            event = Event.from_bytes(bytes(letter.value) if letter.value is not None else None, settings.SAGA_MAX_EVENT_BYTES)
        except InvalidEvent as exc:
            raise CorrectionRefused(f"dead letter {letter_id} of {service} is not an event that can be replayed: {exc}") from None
        own = OutboxMessage.objects.using(service).filter(event_id=event.eventId).first()
        if own is not None:  # its own event: published again from its outbox row
            own.published_at = None
            own.save(update_fields=["published_at"])
            transaction.on_commit(lambda: outbox.after_commit(service, [own]), using=service)
        else:
            outbox.emit(service, event)
        outbox.emit(service, event.caused("DeadLetterReplayed", service, {
            "operator": operator, "reason": reason, "service": service, "replayedEventId": event.eventId,
            "replayedEventType": event.eventType, "deadLetterId": letter.id,
        }))
        letter.replayed_at, letter.replayed_by, letter.replay_reason = timezone.now(), operator, reason
        letter.save(update_fields=["replayed_at", "replayed_by", "replay_reason"])
    return event
