"""Each service's handlers say what they changed (Context.effect), and the batch writes it on the
inbox record in the transaction of the change, with the record's Kafka timestamp and when the
consumer took it (issue 12, "What each event changed": from the services' own records, never
recomputed). The real handlers, in-process, against each service's real database; an Abort
leaves no effect behind."""
from decimal import Decimal

import pytest
from aiokafka.structs import ConsumerRecord

from sagaboard.kernel.batch import Delivery, apply_batch
from sagaboard.kernel.events import Event
from sagaboard.kernel.models import InboxRecord
from services.deadline.saga import service as deadline_service
from services.exchange.saga import service as exchange_service
from services.order.models import APPROVED, PENDING, REJECTED_DEADLINE, Order
from services.order.saga import service as order_service
from services.point.models import Account, Spend
from services.point.saga import service as point_service

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)
FAR = 2**42  # a deadline far in the future (ms since the epoch)
offsets = iter(range(10**6))


def handle(service, event: Event, published_ms: int = 1_000, received_ms: int = 1_005) -> InboxRecord:
    """Apply `event` with `service`'s own handler in one batch; its inbox record."""
    record = ConsumerRecord("t", 0, next(offsets), published_ms, 0, str(event.orderId).encode(), event.to_bytes(),
                            None, 0, 0, [("type", event.eventType.encode())])
    delivery = Delivery("tp", record, event=event, handler=service.handlers[event.eventType], received_at_ms=received_ms)
    result = apply_batch(service, [delivery])
    assert result.finished == [delivery], result
    return InboxRecord.objects.using(service.name).get(event_id=event.eventId)


def event(event_type: str, order_id: int, payload: dict, policy: str = "safe", deadline: int = FAR) -> Event:
    return Event(eventType=event_type, orderId=order_id, source="test", payload=payload, deadline=deadline, policy=policy)


def test_points_spent_and_refunded_with_the_balance_after():
    Account.objects.using("point").create(holder_id="h", point=Decimal("1000"))
    spent = handle(point_service, event("ExchangeSucceeded", 1, {"holderId": "h", "currencyId": "1", "amount": 100, "point": "250.50"}))
    assert spent.effect == {"points": "-250.50", "balance": "749.50"}
    assert (spent.published_at_ms, spent.received_at_ms) == (1_000, 1_005)
    Account.objects.using("point").filter(holder_id="h").update(point=Decimal("700"))  # another order spent meanwhile
    refunded = handle(point_service, event("ExchangeCompensated", 1, {"compensated": True, "holderId": "h"}))
    assert refunded.effect == {"points": "250.50", "balance": "950.50"}  # the balance then, not recomputed
    assert Spend.objects.using("point").get(order_id=1).refunded_at is not None
    nothing = handle(point_service, event("ExchangeCompensated", 2, {"compensated": False, "holderId": "h"}))
    assert nothing.effect is None  # nothing was spent on order 2
    adjustment = {"holderId": "h", "point": "-0.50", "operator": "ops", "reason": "a correction"}
    adjusted = handle(point_service, event("PointsAdjusted", 1, adjustment))
    assert adjusted.effect == {"points": "-0.50", "balance": "950.00"}
    refused = handle(point_service, event("PointsAdjusted", 1, {**adjustment, "point": "-5000.00"}))
    assert (refused.outcome, refused.effect) == (InboxRecord.IGNORED, None)


def test_an_abort_leaves_no_effect():
    """A handler that noted an effect and then aborted (the expiry re-check just before commit)
    leaves its outcome and no effect; an expired event refused up front notes none either."""
    from sagaboard.kernel.service import Abort, Service, dropped

    service = Service("exchange")

    @service.handles("OrderCreated")
    def exchange(event, ctx):
        ctx.effect(exchange="created", point="1.00")
        raise Abort(dropped("expired just before the commit"))

    aborted = handle(service, event("OrderCreated", 4, {"holderId": "h", "currencyId": "1", "amount": 1}))
    assert (aborted.outcome, aborted.effect) == (InboxRecord.DROPPED, None)
    Account.objects.using("point").create(holder_id="late", point=Decimal("1000"))
    expired = handle(point_service, event("ExchangeSucceeded", 3, {"holderId": "late", "currencyId": "1", "amount": 1, "point": "1.00"},
                                          deadline=1))
    assert (expired.outcome, expired.effect) == (InboxRecord.DROPPED, None)
    assert Account.objects.using("point").get(holder_id="late").point == Decimal("1000")


def test_order_status_exchange_and_deadline_effects():
    Order.objects.using("order").create(id=5, holder_id="h", currency_id="1", amount=100, deadline=FAR, status=PENDING)
    approved = handle(order_service, event("PointUsed", 5, {"holderId": "h", "point": "100.00"}))
    assert approved.effect == {"status": [PENDING, APPROVED]}
    Order.objects.using("order").create(id=6, holder_id="h", currency_id="1", amount=100, deadline=FAR, status=PENDING)
    rejected = handle(order_service, event("DeadlineReached", 6, {"dueAt": 5}))
    assert rejected.effect == {"status": [PENDING, REJECTED_DEADLINE]}
    late = handle(order_service, event("PointUsed", 6, {"holderId": "h", "point": "100.00"}))
    assert (late.outcome, late.effect) == (InboxRecord.IGNORED, None)

    created = handle(exchange_service, event("OrderCreated", 7, {"holderId": "h", "currencyId": "1", "amount": 100}))
    assert created.effect == {"exchange": "created", "point": "100.00"}
    removed = handle(exchange_service, event("OrderRejected", 7, {"status": REJECTED_DEADLINE, "reason": "late", "holderId": "h"}))
    assert removed.effect == {"exchange": "removed"}

    armed = handle(deadline_service, event("OrderCreated", 8, {"holderId": "h", "currencyId": "1", "amount": 100}, deadline=FAR))
    assert armed.effect == {"deadline": "armed", "dueAt": FAR}
    disarmed = handle(deadline_service, event("OrderPlaced", 8, {"holderId": "h"}))
    assert disarmed.effect == {"deadline": "disarmed"}
