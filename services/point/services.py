"""Point commands used by the API and the saga. Points are Decimals with two places
(sagaboard/kernel/fields.py), kept as hundredths (PointsColumn): every sum here is exact."""
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from sagaboard.kernel import outbox
from sagaboard.kernel.columns import add_points
from sagaboard.kernel.events import Event
from sagaboard.kernel.fields import POINT_UNIT, POINTS_MAX, format_points, points

from .models import Account, Adjustment, Grant, Spend


class BalanceLimit(Exception):
    """The grant would take the balance past POINTS_MAX (what its column holds); says so."""


def grant_points(*, holder_id: str, point: Decimal) -> Account:
    """Add `point` (> 0) to the holder's balance, opening the account on the first grant; emits
    PointsGranted. BalanceLimit when the balance would pass POINTS_MAX (nothing changes)."""
    point = points(point, lowest=POINT_UNIT)
    with transaction.atomic(using="point"):
        Account.objects.get_or_create(holder_id=holder_id)
        if not Account.objects.filter(holder_id=holder_id, point__lte=POINTS_MAX - point).update(point=add_points("point", point)):
            raise BalanceLimit(f"holder {holder_id!r} would have more than {format_points(POINTS_MAX)} points")
        event = outbox.emit("point", Event(eventType="PointsGranted", orderId=None, source="point",
                                           payload={"holderId": holder_id, "point": format_points(point)}))
        Grant.objects.create(holder_id=holder_id, point=point, event_id=event.eventId)
    return Account.objects.get(holder_id=holder_id)


def refund(order_id: int) -> Spend | None:
    """Give back the points spent on an order, once: the spend refunded, or None when there is
    nothing to give back."""
    spend = Spend.objects.select_for_update().filter(order_id=order_id, refunded_at__isnull=True).first()
    if spend is None:
        return None
    Account.objects.filter(holder_id=spend.holder_id).update(point=add_points("point", spend.point))
    spend.refunded_at = timezone.now()
    spend.save(update_fields=["refunded_at"])
    return spend


def balance(holder_id: str) -> Decimal:
    """The holder's points now (in the caller's transaction: after its own change). DoesNotExist
    when the holder has no account."""
    return Account.objects.filter(holder_id=holder_id).values_list("point", flat=True).get()


def apply_adjustment(*, event_id: str, holder_id: str, point: Decimal, operator: str, reason: str, order_id: int | None) -> bool:
    """An operator's PointsAdjusted, inside the point service's handler transaction (the inbox
    makes it once), to an existing account only. False when there is no such account or it would
    take the balance below zero or past POINTS_MAX: then nothing changes."""
    if not Account.objects.filter(holder_id=holder_id, point__gte=max(-point, 0), point__lte=POINTS_MAX - max(point, 0)).update(
            point=add_points("point", point)):
        return False
    Adjustment.objects.create(
        holder_id=holder_id, point=point, operator=operator, reason=reason, order_id=order_id, event_id=event_id
    )
    return True
