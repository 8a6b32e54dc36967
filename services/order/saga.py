"""The order service: approves on PointUsed, rejects on a failure or the deadline."""
from sagaboard.kernel.service import Service, ignored

from .models import APPROVED, REJECTED_DEADLINE, REJECTED_EXCHANGE, REJECTED_OPERATOR, REJECTED_POINT_LIMIT, Order
from .services import change_status

service = Service("order")

REJECTIONS = {
    "PointUseFailed": REJECTED_POINT_LIMIT,
    "ExchangeFailed": REJECTED_EXCHANGE,
    "DeadlineReached": REJECTED_DEADLINE,
}


@service.handles("PointUsed")
def approve(event, ctx):
    order = ctx.row(Order)
    if order is None:
        return ignored("unknown order")
    if order.status == APPROVED:
        return ignored("already approved")
    if order.status == REJECTED_OPERATOR:
        return ignored("an operator rejected this order; that is final under every policy")
    if order.is_terminal and event.policy == "safe":
        return ignored(f"order is already {order.status}; a terminal state is final")
    # under the naive policy an approval overrides a rejection: the seed's bug, on purpose
    ctx.effect(status=[order.status, APPROVED])
    change_status(order, APPROVED, event)
    ctx.emit("OrderPlaced", {"holderId": order.holder_id})


@service.handles(*REJECTIONS)
def reject(event, ctx):
    order = ctx.row(Order)
    if order is None:
        return ignored("unknown order")
    if order.is_terminal:
        return ignored(f"order is already {order.status}")
    status = REJECTIONS[event.eventType]
    reason = event.payload.get("reason") or "the deadline passed before the saga finished"
    ctx.effect(status=[order.status, status])
    change_status(order, status, event, reason)
    ctx.emit("OrderRejected", {"status": status, "reason": reason, "holderId": order.holder_id})
