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

from dataclasses import dataclass
from typing import Callable

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

    def __init__(self, service: Service, event: Event):
        self.service = service
        self.event = event
        self.emitted: list[Event] = []
        self.effects: dict = {}

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


class Service:
    """A saga participant: a name (also its database alias and its offsets' group) and its handlers.

    `records_everything`: the service wants every valid event, handled or not (the monitor);
    others never even parse a record whose `type` header names an event they do not handle."""

    records_everything = False

    def __init__(self, name: str):
        self.name = name
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

    def skips(self, event_type: bytes | None) -> bool:
        """A record whose `type` header is this is none of this service's business: a known event
        type it has no handler for. A record without the header, or with an unknown type, is
        parsed (and dead-lettered if it is not an event: DESIGN.md section 3)."""
        if self._skipped is None:  # handlers are all declared at import: compute once
            self._skipped = frozenset() if self.records_everything else frozenset(
                t.encode() for t in EVENT_TYPES if t not in self.handlers)
        return event_type in self._skipped

    def apply_batch(self, deliveries):
        """Apply deliveries in one transaction (sagaboard/kernel/batch.py); the monitor overrides it."""
        from .batch import apply_batch

        return apply_batch(self, deliveries)
