"""Batches (sagaboard/kernel/batch.py) on the real database of the pass: many records in one
transaction, each taking effect exactly once, a poison or failing record never taking the rest of
its batch down, and the order within an order id kept."""
import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
from aiokafka.structs import ConsumerRecord

from sagaboard.kernel.batch import MAX_ATTEMPTS, Delivery, apply_batch
from sagaboard.kernel.events import Event
from sagaboard.kernel.models import DeadLetter, InboxRecord, OutboxMessage
from sagaboard.kernel.service import Abort, Service, dropped
from services.exchange.models import Exchange
from tests.system import ROOT

pytestmark = pytest.mark.django_db(databases="__all__", transaction=True)
SERVICE = "exchange"  # a real service database; the handlers below are the test's own


class Boom(Exception):
    pass


def make_service() -> Service:
    """Exchanges an OrderCreated like the exchange does; amount 13 raises, amount 7 aborts."""
    service = Service(SERVICE)

    @service.handles("OrderCreated")
    def exchange(event, ctx):
        amount = event.payload["amount"]
        Exchange.objects.create(order_id=event.orderId, holder_id="h", currency_id="1", amount=amount, point=amount)
        if amount == 13:
            raise Boom("unlucky")
        if amount == 7:
            raise Abort(dropped("expired just before the commit"))
        ctx.emit("ExchangeSucceeded", {"holderId": "h", "currencyId": "1", "amount": amount, "point": amount})

    return service


offsets = iter(range(10**6))


def delivery(order_id: int, amount: int, event: Event | None = None) -> Delivery:
    event = event or Event(eventType="OrderCreated", orderId=order_id, source="order",
                           payload={"holderId": "h", "currencyId": "1", "amount": amount}, deadline=2**40)
    record = ConsumerRecord("t", 0, next(offsets), 0, 0, str(order_id).encode(), event.to_bytes(), None, 0, 0,
                            [("type", b"OrderCreated")])
    return Delivery("tp", record, event=event, handler=make_service().handlers["OrderCreated"])


def poison(order_id: int) -> Delivery:
    record = ConsumerRecord("t", 0, next(offsets), 0, 0, str(order_id).encode(), b"not json", None, 0, 0, [])
    return Delivery("tp", record, error="not UTF-8 JSON")


def test_a_batch_applies_every_record_in_one_transaction_and_emits_in_order():
    service = make_service()
    batch = [delivery(1, 100), delivery(2, 200), delivery(1, 300, Event(
        eventType="OrderCreated", orderId=11, source="order", payload={"holderId": "h", "currencyId": "1", "amount": 300}))]
    result = apply_batch(service, batch)
    assert result.finished == batch and not result.failed and not result.deferred
    assert sorted(Exchange.objects.values_list("order_id", flat=True)) == [1, 2, 11]
    assert InboxRecord.objects.using(SERVICE).count() == 3
    assert [r.order_id for r in result.emitted] == [1, 2, 11]  # written in order, with their ids
    assert [r.id for r in result.emitted] == sorted(r.id for r in result.emitted)
    assert OutboxMessage.objects.using(SERVICE).filter(published_at__isnull=True).count() == 3


def test_a_redelivery_and_a_second_copy_in_one_batch_take_effect_once():
    service = make_service()
    first = delivery(1, 100)
    apply_batch(service, [first])
    again = delivery(1, 100, first.event)
    twin = delivery(2, 200)
    copy = delivery(2, 200, twin.event)
    result = apply_batch(service, [again, twin, copy])
    assert result.finished == [again, twin, copy]
    assert sorted(Exchange.objects.values_list("order_id", flat=True)) == [1, 2]
    assert InboxRecord.objects.using(SERVICE).count() == 2
    assert len(result.emitted) == 1


def test_a_poison_record_in_the_middle_is_dead_lettered_and_the_rest_applied():
    service = make_service()
    batch = [delivery(1, 100), poison(5), delivery(2, 200)]
    result = apply_batch(service, batch)
    assert result.finished == batch
    assert sorted(Exchange.objects.values_list("order_id", flat=True)) == [1, 2]
    letter = DeadLetter.objects.using(SERVICE).get()
    assert letter.error == "not UTF-8 JSON" and bytes(letter.value) == b"not json" and letter.offset == batch[1].record.offset


def test_a_failing_handler_is_undone_alone_and_what_follows_it_in_its_lane_waits():
    service = make_service()
    bad, behind, other = delivery(1, 13), delivery(1, 100), delivery(2, 200)
    result = apply_batch(service, [bad, behind, other])
    assert result.failed == [bad] and "Boom: unlucky" in bad.last_error
    assert result.deferred == [behind]  # order 1's next event waits for the failed one
    assert result.finished == [other]
    assert list(Exchange.objects.values_list("order_id", flat=True)) == [2]  # the failed one's row was undone
    assert list(InboxRecord.objects.using(SERVICE).values_list("order_id", flat=True)) == [2]
    assert [r.order_id for r in result.emitted] == [2]


def test_a_handler_that_keeps_failing_is_dead_lettered_on_its_last_attempt():
    service = make_service()
    bad = delivery(1, 13)
    bad.attempts, bad.last_error = MAX_ATTEMPTS, "Boom: unlucky"
    result = apply_batch(service, [bad, delivery(1, 100)])
    assert [d.event.payload["amount"] for d in result.finished] == [13, 100]
    assert "handler failed 3 times" in DeadLetter.objects.using(SERVICE).get().error
    assert list(Exchange.objects.values_list("amount", flat=True)) == [100]


def test_an_abort_undoes_its_effects_records_its_outcome_and_leaves_the_others():
    service = make_service()
    aborted, fine = delivery(1, 7), delivery(2, 200)
    result = apply_batch(service, [aborted, fine])
    assert result.finished == [aborted, fine]
    assert list(Exchange.objects.values_list("order_id", flat=True)) == [2]
    outcomes = dict(InboxRecord.objects.using(SERVICE).values_list("order_id", "outcome"))
    assert outcomes == {1: "dropped", 2: "applied"}
    assert [(d.event.orderId, o.kind) for d, o in result.not_applied] == [(1, "dropped")]
    assert [r.order_id for r in result.emitted] == [2]


def test_a_stop_during_a_batch_rolls_it_back_before_its_next_delivery():
    """SIGTERM while a batch runs (faults.shutting_down, set by Runtime.stop): the batch stops at
    its next delivery and rolls back whole, so a stop never waits for the rest of a batch; nothing
    of it took effect, and all of it is applied when it is delivered again after the restart."""
    from sagaboard.kernel import faults

    service = make_service()
    handler = service.handlers["OrderCreated"]
    seen = []

    def signalled_during_the_second(event, ctx):
        seen.append(event.orderId)
        if len(seen) == 2:
            faults.shutting_down.set()
        return handler.fn(event, ctx)

    batch = [delivery(order_id, 100) for order_id in (1, 2, 3, 4)]
    for d in batch:
        d.handler = dataclasses.replace(handler, fn=signalled_during_the_second)
    try:
        with pytest.raises(faults.ShuttingDown):
            apply_batch(service, batch)
    finally:
        faults.shutting_down.clear()
    assert seen == [1, 2], "the third and fourth deliveries were not started"
    assert Exchange.objects.count() == 0 and InboxRecord.objects.using(SERVICE).count() == 0
    assert OutboxMessage.objects.using(SERVICE).count() == 0
    for d in batch:
        d.handler = handler
    assert len(apply_batch(service, batch).finished) == 4 and Exchange.objects.count() == 4


CRASH_MID_BATCH = """
import django, os, sys
os.environ["DJANGO_SETTINGS_MODULE"] = "sagaboard.settings"
django.setup()
sys.path.insert(0, {root!r})
from sagaboard.kernel import faults
from tests.test_batch import apply_batch, delivery, make_service
faults.service = "exchange"  # as the runtime of a service process sets it
apply_batch(make_service(), [delivery(1, 100), delivery(2, 200)])
print("not crashed")
"""


def test_a_crash_in_the_middle_of_a_batch_leaves_nothing_of_it(settings):
    """os._exit inside the batch's transaction (the crash point handler_mid): none of its records
    took effect, so all of them are delivered again and applied then."""
    from django.db import connections

    db = settings.DATABASES[SERVICE]
    env = {**os.environ, "SAGA_FAULT_CRASH": "handler_mid:1"}
    if db["ENGINE"].endswith("sqlite3"):
        env["SAGA_DATA_DIR"] = str(Path(db["NAME"]).parent)
        env["EXCHANGE_DATABASE_URL"] = f"sqlite:///{db['NAME']}"
    else:
        env["EXCHANGE_DATABASE_URL"] = f"postgres://{db['USER']}@{db['HOST']}:{db['PORT'] or 5432}/{db['NAME']}"
    connections.close_all()
    done = subprocess.run([sys.executable, "-c", CRASH_MID_BATCH.format(root=str(ROOT))], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 70, (done.stdout, done.stderr)
    assert "fault injection: crashing at handler_mid" in done.stderr
    assert Exchange.objects.count() == 0 and InboxRecord.objects.using(SERVICE).count() == 0
    assert OutboxMessage.objects.using(SERVICE).count() == 0
    result = apply_batch(make_service(), [delivery(1, 100), delivery(2, 200)])  # redelivered after the restart
    assert len(result.finished) == 2 and Exchange.objects.count() == 2


def saga_delivery(service: Service, event: Event) -> Delivery:
    """A record of `event` for one of the saga's real services, with that service's handler."""
    record = ConsumerRecord("t", 0, next(offsets), 0, 0, event.key, event.to_bytes(), None, 0, 0,
                            [("type", event.eventType.encode())])
    return Delivery("tp", record, event=event, handler=service.handlers[event.eventType])


def exchanged(order_id: int, point: str = "10.00") -> Event:
    return Event(eventType="ExchangeSucceeded", orderId=order_id, source="exchange", policy="safe", deadline=2**42,
                 payload={"holderId": "h", "currencyId": "1", "amount": 10, "point": point})


def test_a_batch_looks_up_each_model_once_for_its_orders_first_events():
    """Batch lookups (Context.has, kernel/service.py): the point service's checks for a tombstone
    and a spend on ten orders take one query per model for the whole batch, not one per event,
    and each order's points are spent once."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from services.point.models import Account, Spend
    from services.point.saga import service as point
    from services.point.services import grant_points

    grant_points(holder_id="h", point="1000")
    batch = [saga_delivery(point, exchanged(order_id)) for order_id in range(100, 110)]
    with CaptureQueriesContext(connections["point"]) as queries:
        result = apply_batch(point, batch)
    assert result.finished == batch and not result.not_applied
    lookups = [q["sql"] for q in queries
               if q["sql"].startswith("SELECT") and ("tombstone" in q["sql"] or "spend" in q["sql"])]
    assert len(lookups) == 2 and all(" IN (" in sql for sql in lookups), lookups
    assert Spend.objects.count() == 10 and Account.objects.get(holder_id="h").point == 900


def test_a_later_event_of_an_order_in_the_same_batch_sees_what_the_earlier_one_did():
    """The batch's lookups are a snapshot taken at the first ask, valid only for orders none of
    whose events has run in the batch yet: a second ExchangeSucceeded of the same order (another
    event id, so the inbox lets it through) must see the spend the first made in this very
    batch, and be ignored, not spend the points again."""
    from services.point.models import Account, Spend
    from services.point.saga import service as point
    from services.point.services import grant_points

    grant_points(holder_id="h", point="1000")
    first, other, again = (saga_delivery(point, exchanged(order_id)) for order_id in (200, 201, 200))
    result = apply_batch(point, [first, other, again])
    assert result.finished == [first, other, again] and not result.failed
    assert [(d, o.reason) for d, o in result.not_applied] == [(again, "points were already spent on this order")]
    assert Spend.objects.count() == 2 and Account.objects.get(holder_id="h").point == 980


def test_the_order_service_reads_its_batchs_orders_in_one_query_and_a_later_event_sees_the_change():
    """Batch rows (Context.row, kernel/service.py): the order service's PointUsed on ten orders
    reads the ten orders in one query for the batch, not one per event; a DeadlineReached of one
    of them behind its PointUsed in the same batch reads the order again and finds it APPROVED."""
    from django.db import connections
    from django.test.utils import CaptureQueriesContext

    from services.order.models import APPROVED, Order
    from services.order.saga import service as order
    from services.order.services import place_order

    ids = [place_order(holder_id="h", currency_id="1", amount=10).id for _ in range(10)]

    def used(order_id: int) -> Event:
        return Event(eventType="PointUsed", orderId=order_id, source="point", policy="safe", deadline=2**42,
                     payload={"holderId": "h", "point": "10.00"})

    late = Event(eventType="DeadlineReached", orderId=ids[0], source="deadline", policy="safe", deadline=2**42, payload={})
    batch = [saga_delivery(order, used(order_id)) for order_id in ids] + [saga_delivery(order, late)]
    with CaptureQueriesContext(connections["order"]) as queries:
        result = apply_batch(order, batch)
    assert result.finished == batch and not result.failed
    assert [(d, o.reason) for d, o in result.not_applied] == [(batch[-1], f"order is already {APPROVED}")]
    reads = [q["sql"] for q in queries if q["sql"].startswith("SELECT") and 'FROM "order_order"' in q["sql"]]
    assert len(reads) == 2 and " IN (" in reads[0] and " IN (" not in reads[1], reads
    if connections["order"].features.has_select_for_update:  # PostgreSQL: the rows stay locked, as before
        assert all(sql.endswith("FOR UPDATE") for sql in reads), reads
    assert set(Order.objects.filter(pk__in=ids).values_list("status", flat=True)) == {APPROVED}


@pytest.mark.postgres
def test_a_failing_handler_in_the_savepoint_pass_leaves_the_other_orders_rows_locked():
    """PostgreSQL releases the row locks taken inside a savepoint that is rolled back. On the
    batch's second pass every delivery runs in a savepoint of its own, so the batch's orders may
    not be locked together at one handler's ask (`BatchLookups.shared_locks`): had the failing
    first handler locked them all, the next handler would get its order unlocked, and an
    operator's rejection could commit under it. Each event locks its own row there."""
    import psycopg
    from django.db import connections

    from services.order.models import Order
    from services.order.services import place_order

    if connections["order"].vendor != "postgresql":
        pytest.skip("PostgreSQL's row locks: the PostgreSQL pass of `make test` runs it")
    unlucky, other = (place_order(holder_id="h", currency_id="1", amount=amount).id for amount in (13, 10))
    service = Service("order")
    locked = {}

    def locked_elsewhere(order_id: int) -> bool:
        with psycopg.connect(**connections["order"].get_connection_params(), autocommit=True) as peer:
            try:
                peer.execute('SELECT id FROM "order_order" WHERE id = %s FOR UPDATE NOWAIT', [order_id])
                return False
            except psycopg.errors.LockNotAvailable:
                return True

    @service.handles("PointUsed")
    def approve(event, ctx):
        order = ctx.row(Order)
        if order.amount == 13:
            raise Boom("unlucky")
        locked[order.id] = locked_elsewhere(order.id)

    batch = [saga_delivery(service, Event(eventType="PointUsed", orderId=order_id, source="point", policy="safe",
                                          deadline=2**42, payload={"holderId": "h", "point": "10.00"}))
             for order_id in (unlucky, other)]
    result = apply_batch(service, batch)
    assert result.failed == [batch[0]] and result.finished == [batch[1]]
    assert locked == {other: True}, "the other order's row was not locked while its handler ran"
