"""Batching: the records of a fetch, applied in one database transaction of the service.

A batch holds each lane's front records in order (sagaboard/kernel/lanes.py). In one transaction
it checks the inbox for every event at once, runs each handler, writes every inbox row and every
outbox row in bulk, and dead-letters what is not an event (DESIGN.md sections 3 and 5: the effect,
its inbox record and its outbox rows commit together). One transaction per batch instead of one per
record is most of what made the services ten times cheaper (README, "Efficiency").

The common case runs without savepoints. If anything in it raises (a handler's bug, an `Abort`
from the expiry re-check, a peer that applied the same event first), the whole transaction is
rolled back and the batch runs again with each delivery in a savepoint of its own: that one's
effects are undone alone, the others commit. A delivery whose handler failed is handed back to be
retried alone (and dead-lettered after its last attempt); the deliveries behind it in its lane are
handed back untouched, so an order's events still take effect in order.
"""
from __future__ import annotations

import traceback
from dataclasses import dataclass, field

from django.db import IntegrityError, InterfaceError, OperationalError, transaction

from . import faults
from .events import Event
from .models import DeadLetter, InboxRecord, OutboxMessage
from .service import APPLIED, Abort, BatchLookups, Context

MAX_ATTEMPTS = 3  # a handler that fails this often dead-letters its event


@dataclass(eq=False)
class Delivery:
    """One record handed to a service: the event in it (None when the value is not an event, then
    `error` says why), its handler, and an outcome already decided by the handler's `before` step."""

    tp: object
    record: object
    event: Event | None = None
    handler: object | None = None
    error: str = ""
    outcome: object | None = None
    before_done: bool = False
    attempts: int = 0
    last_error: str = ""
    received_at_ms: int | None = None  # when the consumer took the record (the effect panel's timing)

    @property
    def key(self):
        return self.record.key

    def must_wait(self) -> bool:
        """Its handler's `before` step has not run yet (it may sleep: the seed's delays)."""
        return self.handler is not None and self.handler.before is not None and not self.before_done


@dataclass
class BatchResult:
    finished: list[Delivery] = field(default_factory=list)  # applied, ignored, dropped, duplicate or dead-lettered
    failed: list[Delivery] = field(default_factory=list)  # a handler raised: retry (`last_error` says what)
    deferred: list[Delivery] = field(default_factory=list)  # behind a failed one in its lane: untouched
    emitted: list[OutboxMessage] = field(default_factory=list)  # committed outbox rows, in order, with ids
    not_applied: list[tuple[Delivery, object]] = field(default_factory=list)  # (delivery, outcome) ignored or dropped


def dead_letter_row(record, error: str) -> DeadLetter:
    return DeadLetter(
        topic=record.topic, partition=record.partition, offset=record.offset, key=record.key, value=record.value,
        # a header's value may be null in Kafka (a record with `type: null` stopped every service)
        headers=[[k, None if v is None else v.decode("utf-8", "replace")] for k, v in (record.headers or ())], error=error,
    )


def inbox_row(delivery: Delivery, outcome, effects: dict | None = None) -> InboxRecord:
    event, record = delivery.event, delivery.record
    return InboxRecord(event_id=event.eventId, event_type=event.eventType, order_id=event.orderId, outcome=outcome.kind,
                       reason=outcome.reason[:255], partition=record.partition, offset=record.offset,
                       effect=effects or None, published_at_ms=record.timestamp,
                       received_at_ms=delivery.received_at_ms)


def outbox_row(event: Event) -> OutboxMessage:
    return OutboxMessage(event_id=event.eventId, event_type=event.eventType, order_id=event.orderId,
                         key=event.key.decode(), body=event.to_bytes())


def apply_batch(service, deliveries: list[Delivery]) -> BatchResult:
    """Apply `deliveries` in one transaction of `service`'s database (runs in its database thread).

    Raises OperationalError / InterfaceError (the database is locked or gone): nothing was
    committed, the caller retries the whole batch. Raises faults.ShuttingDown when the process is
    told to stop while the batch runs: it is rolled back before its next delivery, and every one of
    its records is delivered again after the restart (their offsets were not committed), so a
    SIGTERM never waits for the rest of a batch (a batch of 500 took 2.5 to 3.1 s on a busy
    PostgreSQL: test_recovery's stop amid a backlog)."""
    try:
        with transaction.atomic(using=service.name):
            result = _apply(service, deliveries, isolate=False)
            faults.crash_point("handler_mid")
        return result
    except (OperationalError, InterfaceError, faults.ShuttingDown):
        raise
    except Exception:
        pass  # rolled back; run it again with a savepoint per delivery
    with transaction.atomic(using=service.name):
        result = _apply(service, deliveries, isolate=True)
        faults.crash_point("handler_mid")
    return result


def _apply(service, deliveries: list[Delivery], isolate: bool) -> BatchResult:
    using = service.name
    result = BatchResult()
    ids = [d.event.eventId for d in deliveries if d.event is not None]
    applied = {str(u) for u in InboxRecord.objects.using(using).filter(event_id__in=ids).values_list("event_id", flat=True)} if ids else set()
    inbox, letters, emitted = [], [], []
    blocked = set()  # keys of lanes with a failed delivery in this batch
    # the orders whose events will run: not those applied already, nor those to dead-letter
    lookups = BatchLookups((d.event.orderId for d in deliveries if d.event is not None
                            and d.event.eventId not in applied and d.attempts < MAX_ATTEMPTS),
                           shared_locks=not isolate)
    began = set()  # orders one of whose events ran in this batch: the lookups' snapshot is stale for them
    for delivery in deliveries:
        if faults.shutting_down.is_set():
            raise faults.ShuttingDown()  # the whole batch rolls back (apply_batch)
        if delivery.key in blocked:
            result.deferred.append(delivery)
            continue
        if delivery.event is None or delivery.attempts >= MAX_ATTEMPTS:
            error = delivery.error or f"handler failed {delivery.attempts} times: {delivery.last_error}"
            letters.append(dead_letter_row(delivery.record, error))
            result.finished.append(delivery)
            continue
        event = delivery.event
        if event.eventId in applied:  # a redelivery, or a second copy in this batch
            result.finished.append(delivery)
            continue
        applied.add(event.eventId)
        ctx = Context(service, event, None if event.orderId in began else lookups)
        began.add(event.orderId)
        if not isolate:
            outcome = delivery.outcome or delivery.handler.fn(event, ctx) or APPLIED  # anything raised: isolate
            inbox.append(inbox_row(delivery, outcome, ctx.effects))
        else:
            try:
                with transaction.atomic(using=using):
                    try:
                        with transaction.atomic(using=using):
                            outcome = delivery.outcome or delivery.handler.fn(event, ctx) or APPLIED
                    except Abort as abort:  # the handler's effects are undone; its outcome is recorded
                        outcome, ctx.emitted, ctx.effects = abort.outcome, [], {}
                    inbox_row(delivery, outcome, ctx.effects).save(using=using)
            except IntegrityError:
                if InboxRecord.objects.using(using).filter(event_id=event.eventId).exists():
                    result.finished.append(delivery)  # a peer process applied it first
                    continue
                delivery.last_error = traceback.format_exc(limit=5)
                result.failed.append(delivery)
                blocked.add(delivery.key)
                continue
            except (OperationalError, InterfaceError, faults.ShuttingDown):
                raise
            except Exception:
                delivery.last_error = traceback.format_exc(limit=5)
                result.failed.append(delivery)
                blocked.add(delivery.key)
                continue
        emitted += [outbox_row(e) for e in ctx.emitted]
        result.finished.append(delivery)
        if outcome.kind != InboxRecord.APPLIED:
            result.not_applied.append((delivery, outcome))
    if inbox:
        InboxRecord.objects.using(using).bulk_create(inbox)
    if letters:
        DeadLetter.objects.using(using).bulk_create(letters)
    if emitted:
        result.emitted = OutboxMessage.objects.using(using).bulk_create(emitted)
    return result
