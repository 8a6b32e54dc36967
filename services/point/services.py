"""Point commands used by the API and the saga."""
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from sagaboard.kernel import outbox
from sagaboard.kernel.events import Event

from .models import Account, Adjustment, Grant, Spend


def grant_points(*, holder_id: str, point: float) -> Account:
    with transaction.atomic(using="point"):
        Account.objects.get_or_create(holder_id=holder_id)
        Account.objects.filter(holder_id=holder_id).update(point=F("point") + point)
        event = outbox.emit(
            "point", Event(eventType="PointsGranted", orderId=None, source="point", payload={"holderId": holder_id, "point": point})
        )
        Grant.objects.create(holder_id=holder_id, point=point, event_id=event.eventId)
    return Account.objects.get(holder_id=holder_id)


def refund(order_id: int) -> bool:
    """Give back the points spent on an order, once: False when there is nothing to give back."""
    spend = Spend.objects.select_for_update().filter(order_id=order_id, refunded_at__isnull=True).first()
    if spend is None:
        return False
    Account.objects.filter(holder_id=spend.holder_id).update(point=F("point") + spend.point)
    spend.refunded_at = timezone.now()
    spend.save(update_fields=["refunded_at"])
    return True


def apply_adjustment(*, event_id: str, holder_id: str, point: float, operator: str, reason: str, order_id: int | None) -> bool:
    """An operator's PointsAdjusted, inside the point service's handler transaction (the inbox
    makes it once). False when it would take the balance below zero: then nothing changes."""
    if point >= 0:
        Account.objects.get_or_create(holder_id=holder_id)
        Account.objects.filter(holder_id=holder_id).update(point=F("point") + point)
    elif not Account.objects.filter(holder_id=holder_id, point__gte=-point).update(point=F("point") + point):
        return False
    Adjustment.objects.create(
        holder_id=holder_id, point=point, operator=operator, reason=reason, order_id=order_id, event_id=event_id
    )
    return True
