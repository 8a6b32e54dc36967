"""The point service: spends a holder's points on an exchanged order, refunds on compensation."""
from sagaboard.kernel.columns import add_points
from sagaboard.kernel.fields import format_points, points
from sagaboard.kernel.service import Abort, Service, dropped, ignored

from .models import Account, Spend, Tombstone
from .services import apply_adjustment, balance, refund

service = Service("point")


@service.handles("ExchangeSucceeded")
def use_points(event, ctx):
    holder, point = event.payload["holderId"], points(event.payload["point"])
    safe = event.policy == "safe"
    if safe and ctx.has(Tombstone):
        return ignored("order already compensated")
    if safe and event.expired():  # fix 2: expire ExchangeSucceeded too
        return dropped("ExchangeSucceeded arrived after the deadline")
    if ctx.has(Spend):
        return ignored("points were already spent on this order")
    # one conditional update: two concurrent orders can never both pass the balance check
    spent = Account.objects.filter(holder_id=holder, point__gte=point).update(point=add_points("point", -point))
    if not spent:
        known = Account.objects.filter(holder_id=holder).exists()
        reason = f"holder {holder!r} has fewer than {format_points(point)} points" if known else f"holder {holder!r} has no points"
        ctx.emit("PointUseFailed", {"holderId": holder, "point": format_points(point), "reason": reason})
        return None
    Spend.objects.create(order_id=event.orderId, holder_id=holder, point=point)
    if safe and event.expired():
        raise Abort(dropped("ExchangeSucceeded expired before the points were committed"))
    ctx.effect(points=format_points(-point), balance=format_points(balance(holder)))
    ctx.emit("PointUsed", {"holderId": holder, "point": format_points(point)})
    return None


@service.handles("ExchangeCompensated")
def compensate_after_exchange(event, ctx):
    """Fix 1: the compensation is chained, so the points are refunded after the exchange is undone."""
    if event.policy != "safe":
        return ignored("the naive policy refunds on OrderRejected")
    refunded = refund(event.orderId)
    Tombstone.objects.get_or_create(order_id=event.orderId)
    if refunded:
        ctx.effect(points=format_points(refunded.point), balance=format_points(balance(refunded.holder_id)))
    ctx.emit(
        "PointUseCompensated",
        {"compensated": refunded is not None, "holderId": event.payload.get("holderId"),
         "note": "points refunded" if refunded else "nothing to undo: no points were spent"},
    )
    return None


@service.handles("OrderRejected")
def compensate_on_rejection(event, ctx):
    """The seed's original fan-out: OrderRejected reaches point at the same time as exchange."""
    if event.policy != "naive":
        return ignored("the safe policy refunds after ExchangeCompensated")
    refunded = refund(event.orderId)
    if refunded is None:
        return ignored("nothing to refund yet")
    ctx.effect(points=format_points(refunded.point), balance=format_points(balance(refunded.holder_id)))
    ctx.emit("PointUseCompensated", {"compensated": True, "holderId": event.payload.get("holderId"), "note": "points refunded"})
    return None


@service.handles("PointsAdjusted")
def adjust(event, ctx):
    """An operator's balance correction (sagaboard/corrections.py), with its reason on the record.
    One this service cannot apply (no such account, or the balance would go below 0: the web
    checked, but a spend may have come between) is refused in the open: PointsAdjustmentFailed,
    on the topic, the order's timeline and /events, and the outcome `ignored` with the reason."""
    p = event.payload
    point = points(p["point"])
    applied = apply_adjustment(
        event_id=event.eventId, holder_id=p["holderId"], point=point, operator=p["operator"], reason=p["reason"],
        order_id=event.orderId,
    )
    if applied:
        ctx.effect(points=format_points(point), balance=format_points(balance(p["holderId"])))
        return None
    current = Account.objects.filter(holder_id=p["holderId"]).values_list("point", flat=True).first()
    why = (f"holder {p['holderId']!r} has no account" if current is None
           else f"holder {p['holderId']!r} has {format_points(current)} points; the adjustment of {format_points(point)} does not apply")
    ctx.emit("PointsAdjustmentFailed", {"holderId": p["holderId"], "point": format_points(point), "reason": why})
    return ignored(why)
