"""Order commands (write) used by the API; they change state and emit in one transaction."""
from django.conf import settings
from django.db import transaction

from sagaboard.kernel import outbox
from sagaboard.kernel.events import Event, now_ms

from .models import PENDING, REJECTED_OPERATOR, Order, StatusChange


def place_order(*, holder_id: str, currency_id: str, amount: int, policy: str = "safe") -> Order:
    """A new PENDING order of `amount` (in the currency `currency_id`) for `holder_id`, its first
    status change and its OrderCreated in the outbox, in one transaction of the order database
    (DESIGN.md: the outbox; the seed's POST /orders). Its deadline is SAGA_DEADLINE_SECONDS from
    now, in ms since the epoch. The caller validated the fields (services/order/api.py); a
    database error propagates and nothing is kept."""
    with transaction.atomic(using="order"):
        order = Order.objects.create(
            holder_id=holder_id,
            currency_id=currency_id,
            amount=amount,
            policy=policy,
            deadline=now_ms() + int(settings.SAGA_DEADLINE_SECONDS * 1000),
        )
        StatusChange.objects.create(order=order, from_status="", to_status=PENDING)
        outbox.emit(
            "order",
            Event(
                eventType="OrderCreated",
                orderId=order.id,
                source="order",
                payload={"holderId": holder_id, "currencyId": currency_id, "amount": amount},
                deadline=order.deadline,
                policy=policy,
            ),
        )
    return order


def change_status(order: Order, status: str, event: Event, reason: str = "") -> None:
    StatusChange.objects.create(order=order, from_status=order.status, to_status=status, event_id=event.eventId)
    order.status = status
    order.reason = reason
    order.save(update_fields=["status", "reason", "updated_at"])


def reject_by_operator(*, order_id: int, expected_status: str, operator: str, reason: str) -> Event | None:
    """An operator's rejection: the order becomes REJECTED BY OPERATOR and OrderRejected is emitted
    in the same transaction, so exchange and point compensate through the normal chain. The
    correction always uses the safe (chained) compensation, whatever the order's policy. Returns the
    OrderRejected, or None when the order is no longer `expected_status` (the saga moved on)."""
    with transaction.atomic(using="order"):
        order = Order.objects.select_for_update().filter(pk=order_id, status=expected_status).first()
        if order is None:
            return None
        event = outbox.emit(
            "order",
            Event(
                eventType="OrderRejected",
                orderId=order.id,
                source="order",
                payload={"status": REJECTED_OPERATOR, "reason": reason, "holderId": order.holder_id, "operator": operator},
                deadline=order.deadline,
                policy="safe",
            ),
        )
        change_status(order, REJECTED_OPERATOR, event, f"{reason} (by {operator})")
    return event
