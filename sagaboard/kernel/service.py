"""How a service declares what it does: its handlers, one line each (as Faust agents do).

    service = Service("exchange")

    @service.handles("OrderCreated", before=seed_delays)
    def exchange_order(event, ctx): ...

A handler runs inside the service's database transaction, together with the inbox record of the
event and the outbox rows of the events it emits (`ctx.emit`); several records share one
transaction (sagaboard/kernel/batch.py). It returns None when it applied the event, or
`ignored(reason)` / `dropped(reason)` to say why not, or raises `Abort(outcome)` to undo its
effects and record that outcome instead. `before` is a coroutine run outside the transaction
first (for the seed's delays); it may decide the outcome (`dropped(...)`) itself. Nothing here
knows of Kafka: sagaboard/kernel/consumer.py runs a Service.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from .events import EVENT_TYPES, Event
from .models import InboxRecord


@dataclass(frozen=True)
class Outcome:
    kind: str
    reason: str = ""


APPLIED = Outcome(InboxRecord.APPLIED)


def ignored(reason: str) -> Outcome:
    """The event is valid but changes nothing here (late, duplicate in meaning, after a terminal state)."""
    return Outcome(InboxRecord.IGNORED, reason)


def dropped(reason: str) -> Outcome:
    """A forward step refused an expired event."""
    return Outcome(InboxRecord.DROPPED, reason)


class Abort(Exception):
    """Raised inside a handler to roll its effects back and record `outcome` instead, e.g. when
    the expiry re-check just before commit finds the deadline passed."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.reason)
        self.outcome = outcome


@dataclass(frozen=True)
class Handler:
    fn: Callable
    before: Callable | None = None


class Context:
    """What a handler may do besides touching its own models: emit events of the same saga (written
    to the outbox with the handler's effects and published after the commit), and say what it
    changed (`effect`), which its inbox record keeps, in the same transaction (issue 12: the order
    page shows each event's effect from the services' own records, never recomputed)."""

    def __init__(self, service: Service, event: Event, lookups: BatchLookups | None = None):
        self.service = service
        self.event = event
        self.emitted: list[Event] = []
        self.effects: dict = {}
        self.lookups = lookups  # the batch's snapshot, while no earlier event of this order ran in it

    def has(self, model) -> bool:
        """Whether `model` (a model of this service with an `order_id` column) holds a row for
        this event's order: `model.objects.filter(order_id=...).exists()`, in the handler's
        transaction. The first event of each order in a batch is answered from one query per
        model for the whole batch (`BatchLookups`); a later one of the same order, whose
        predecessor may have changed the rows, and one without an order, query on their own."""
        order_id = self.event.orderId
        if self.lookups is None or order_id is None:
            return model.objects.filter(order_id=order_id).exists()
        return order_id in self.lookups.order_ids_in(model)

    def row(self, model):
        """This event's order's row of `model` (a model whose primary key is the order id), locked
        for the rest of the transaction, or None when there is none:
        `model.objects.select_for_update().filter(pk=...).first()`. Like `has`, the first event of
        each order in a batch is answered from one query for the whole batch
        (`BatchLookups.rows`), unless the batch runs each delivery in a savepoint
        (`BatchLookups.shared_locks`); the instance is that handler's to change and save."""
        order_id = self.event.orderId
        if self.lookups is None or order_id is None or not self.lookups.shared_locks:
            return model.objects.select_for_update().filter(pk=order_id).first()
        return self.lookups.rows(model).get(order_id)

    def effect(self, **changes) -> None:
        """Note what this handler changed; JSON values only (points as format_points strings,
        times in ms since the epoch). Undone with the handler's effects by an Abort."""
        self.effects.update(changes)

    @property
    def using(self) -> str:
        return self.service.name

    def emit(self, event_type: str, payload: dict) -> Event:
        event = self.event.caused(event_type, self.service.name, payload)
        self.emitted.append(event)
        return event


class BatchLookups:
    """What a batch's handlers ask of their own models by order, read once per batch: for each
    model asked about, which of the batch's orders (`order_ids`) have a row (`order_ids_in`), or
    the rows themselves, locked, where the model's primary key is the order id (`rows`).

    Why: an ORM query costs 140-230 µs of Python here, and the saga's handlers began with one or
    two existence checks each (a tombstone, a spend, a deadline); one `IN` query per model per
    batch replaces one query per event (README, "Batch lookups, and the linger kept"). It is a
    snapshot taken inside the batch's transaction at the first ask: valid for an order until
    the first of its events in the batch runs (sagaboard/kernel/batch.py hands it only to that
    one). Handlers change only their own order's rows, and on SQLite a transaction reads one
    snapshot anyway.

    `shared_locks`: whether rows locked at one handler's ask stay locked for the others (`rows`).
    False when each delivery runs in a savepoint of its own (batch.py's second pass): PostgreSQL
    releases the row locks taken inside a savepoint that is rolled back, so rows locked for the
    batch while one failing handler ran would be handed unlocked to the others."""

    def __init__(self, order_ids, shared_locks: bool = True):
        self.order_ids = frozenset(order_ids)
        self.shared_locks = shared_locks
        self.found: dict[type, frozenset] = {}
        self.locked: dict[type, dict] = {}

    def order_ids_in(self, model) -> frozenset:
        """The batch's order ids with a row in `model` (one query, on the first ask per model)."""
        if model not in self.found:
            self.found[model] = frozenset(
                model.objects.filter(order_id__in=self.order_ids).values_list("order_id", flat=True))
        return self.found[model]

    def rows(self, model) -> dict:
        """The batch's orders' rows of `model`, a model whose primary key is the order id (the
        order service's Order), by order id: one `SELECT ... WHERE id IN (...) FOR UPDATE` on the
        first ask, so each row stays locked from then until the batch commits (where one
        `select_for_update` per event locked it from its handler on; PostgreSQL: SQLite's write
        transaction holds the whole database). Only with `shared_locks`."""
        if model not in self.locked:
            self.locked[model] = model.objects.select_for_update().in_bulk(self.order_ids)
        return self.locked[model]


class Service:
    """A saga participant: a name (also its database alias and its offsets' group) and its handlers.

    `records_everything`: the service wants every valid event, handled or not (the monitor);
    others never even parse a record whose `type` header names an event they do not handle.

    `critical_path`: whether a saga's next step waits on this service's handlers (order, exchange,
    point). The deadline (its timer's due time is in the event, and a disarm that comes late is
    ignored by a terminal order) and the monitor (it records) are off it: under load they look
    about 6 times a second (SAGA_OFF_PATH_FETCH_LINGER_MS, and fewer early looks), where a hop
    looks up to 30 times, so their batches are larger and the broker reads its log for them less
    often (kernel/doorbell.py, `parking`; README, "Off the critical path")."""

    records_everything = False

    def __init__(self, name: str, critical_path: bool = True):
        self.name = name
        self.critical_path = critical_path
        self.handlers: dict[str, Handler] = {}
        self.background: list[Callable] = []
        self._skipped: frozenset[bytes] | None = None

    def handles(self, *event_types: str, before: Callable | None = None):
        unknown = [t for t in event_types if t not in EVENT_TYPES]
        if unknown:
            raise ValueError(f"{self.name} handles unknown event types {unknown}; declare them in kernel/events.py")

        def register(fn):
            for event_type in event_types:
                self.handlers[event_type] = Handler(fn, before)
            return fn

        return register

    def task(self, fn):
        """Register a coroutine `fn(runtime)` that runs beside the consumer (the deadline timer)."""
        self.background.append(fn)
        return fn

    def wants(self) -> frozenset[str] | None:
        """The event types this service consumes: those it handles, or None for every type
        (`records_everything`). Its skips and its doorbell (kernel/doorbell.py) both follow this."""
        return None if self.records_everything else frozenset(self.handlers)

    def skips(self, event_type: bytes | None) -> bool:
        """A record whose `type` header is this is none of this service's business: a known event
        type it has no handler for. A record without the header, or with an unknown type, is
        parsed (and dead-lettered if it is not an event: DESIGN.md section 3)."""
        if self._skipped is None:  # handlers are all declared at import: compute once
            wanted = self.wants()
            self._skipped = frozenset() if wanted is None else frozenset(
                t.encode() for t in EVENT_TYPES if t not in wanted)
        return event_type in self._skipped

    def apply_batch(self, deliveries):
        """Apply deliveries in one transaction (sagaboard/kernel/batch.py); the monitor overrides it."""
        from .batch import apply_batch

        return apply_batch(self, deliveries)
