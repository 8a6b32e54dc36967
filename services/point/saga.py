"""The point service: spends a holder's points on an exchanged order, refunds on compensation."""
from django.db.models import F

from sagaboard.kernel.service import Abort, Service, dropped, ignored

from .models import Account, Spend, Tombstone
from .services import apply_adjustment, refund

service = Service("point")


@service.handles("ExchangeSucceeded")
def use_points(event, ctx):
    holder, point = event.payload["holderId"], event.payload["point"]
    safe = event.policy == "safe"
    if safe and Tombstone.objects.filter(order_id=event.orderId).exists():
        return ignored("order already compensated")
    if safe and event.expired():  # fix 2: expire ExchangeSucceeded too
        return dropped("ExchangeSucceeded arrived after the deadline")
    if Spend.objects.filter(order_id=event.orderId).exists():
        return ignored("points were already spent on this order")
    # one conditional update: two concurrent orders can never both pass the balance check
    spent = Account.objects.filter(holder_id=holder, point__gte=point).update(point=F("point") - point)
    if not spent:
        known = Account.objects.filter(holder_id=holder).exists()
        reason = f"holder {holder!r} has fewer than {point:g} points" if known else f"holder {holder!r} has no points"
        ctx.emit("PointUseFailed", {"holderId": holder, "point": point, "reason": reason})
        return None
    Spend.objects.create(order_id=event.orderId, holder_id=holder, point=point)
    if safe and event.expired():
        raise Abort(dropped("ExchangeSucceeded expired before the points were committed"))
    ctx.emit("PointUsed", {"holderId": holder, "point": point})
    return None


@service.handles("ExchangeCompensated")
def compensate_after_exchange(event, ctx):
    """Fix 1: the compensation is chained, so the points are refunded after the exchange is undone."""
    if event.policy != "safe":
        return ignored("the naive policy refunds on OrderRejected")
    refunded = refund(event.orderId)
    Tombstone.objects.get_or_create(order_id=event.orderId)
    ctx.emit(
        "PointUseCompensated",
        {"compensated": refunded, "holderId": event.payload.get("holderId"),
         "note": "points refunded" if refunded else "nothing to undo: no points were spent"},
    )
    return None


@service.handles("OrderRejected")
def compensate_on_rejection(event, ctx):
    """The seed's original fan-out: OrderRejected reaches point at the same time as exchange."""
    if event.policy != "naive":
        return ignored("the safe policy refunds after ExchangeCompensated")
    if not refund(event.orderId):
        return ignored("nothing to refund yet")
    ctx.emit("PointUseCompensated", {"compensated": True, "holderId": event.payload.get("holderId"), "note": "points refunded"})
    return None


@service.handles("PointsAdjusted")
def adjust(event, ctx):
    """An operator's balance correction (sagaboard/corrections.py), with its reason on the record."""
    p = event.payload
    applied = apply_adjustment(
        event_id=event.eventId, holder_id=p["holderId"], point=p["point"], operator=p["operator"], reason=p["reason"],
        order_id=event.orderId,
    )
    return None if applied else ignored(f"holder {p['holderId']!r} has fewer than {-p['point']:g} points to take away")
