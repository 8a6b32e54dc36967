"""The event envelope of DESIGN.md section 3: immutable, validated, free of transport."""
from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field, replace

import orjson

from sagaboard.kernel.fields import BIGINT_MAX, CURRENCY_ID, HOLDER_ID, FieldInvalid, amount, points, reason

POLICIES = ("safe", "naive")

# eventType -> the payload fields it must carry. A new event type is one line here.
EVENT_TYPES: dict[str, tuple[str, ...]] = {
    "PointsGranted": ("holderId", "point"),
    "OrderCreated": ("holderId", "currencyId", "amount"),
    "ExchangeSucceeded": ("holderId", "currencyId", "amount", "point"),
    "ExchangeFailed": ("holderId", "currencyId", "amount", "reason"),
    "ExchangeCompensated": ("compensated",),
    "PointUsed": ("holderId", "point"),
    "PointUseFailed": ("holderId", "point", "reason"),
    "PointUseCompensated": ("compensated",),
    "OrderPlaced": ("holderId",),
    "OrderRejected": ("status", "reason"),
    "DeadlineReached": (),
    # operators' corrections (sagaboard/corrections.py); an operator's OrderRejected also carries "operator"
    "PointsAdjusted": ("holderId", "point", "operator", "reason"),
    "DeadLetterReplayed": ("operator", "reason", "service", "replayedEventId"),
    # the point service's refusal of a PointsAdjusted it cannot apply (it would take the balance below 0)
    "PointsAdjustmentFailed": ("holderId", "point", "reason"),
}
# The payload fields with a rule of their own (kernel/fields.py, the API's too): points are
# decimal strings ("12.50"; a JSON number of at most two places is taken too), ids untrimmed.
PAYLOAD_RULES = {"holderId": HOLDER_ID.clean, "currencyId": CURRENCY_ID.clean, "amount": amount, "point": points}


class InvalidEvent(ValueError):
    """The bytes on the topic are not an event of our contract; they go to the dead-letter store."""


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Event:
    eventType: str
    orderId: int | None
    source: str
    payload: dict
    deadline: int | None = None
    causationId: str | None = None
    policy: str = "safe"
    eventId: str = field(default_factory=lambda: str(uuid.uuid4()))
    timestamp: int = field(default_factory=now_ms)

    @property
    def key(self) -> bytes:
        """Kafka key: the order id keeps one saga on one partition, in order."""
        ident = self.orderId if self.orderId is not None else self.payload.get("holderId", "")
        return str(ident).encode()

    def expired(self, at_ms: int | None = None) -> bool:
        return self.deadline is not None and (at_ms if at_ms is not None else now_ms()) >= self.deadline

    def caused(self, event_type: str, source: str, payload: dict) -> Event:
        """The next event of the same saga: same order, deadline and policy; caused by this one."""
        return Event(
            eventType=event_type,
            orderId=self.orderId,
            source=source,
            payload=payload,
            deadline=self.deadline,
            causationId=self.eventId,
            policy=self.policy,
        )

    def as_dict(self) -> dict:
        """The envelope as DESIGN.md section 3 writes it (the payload is shared, not copied)."""
        return {"eventId": self.eventId, "eventType": self.eventType, "orderId": self.orderId,
                "timestamp": self.timestamp, "deadline": self.deadline, "causationId": self.causationId,
                "source": self.source, "policy": self.policy, "payload": self.payload}

    def to_bytes(self) -> bytes:
        """Compact UTF-8 JSON (orjson: encoding showed in the services' profiles)."""
        return orjson.dumps(self.as_dict())

    def restamped(self) -> Event:
        return replace(self, timestamp=now_ms())

    @classmethod
    def from_dict(cls, data) -> Event:
        if not isinstance(data, dict):
            raise InvalidEvent("event is not a JSON object")
        problems = []

        def need(name, types, nullable=False):
            value = data.get(name)
            if value is None:
                if not nullable:
                    problems.append(f"{name}: required")
                return
            if isinstance(value, bool) or not isinstance(value, types):
                problems.append(f"{name}: expected {types if isinstance(types, type) else types[0]}")

        need("eventId", str)
        need("eventType", str)
        need("orderId", int, nullable=True)
        need("timestamp", int)
        need("deadline", int, nullable=True)
        for name, lowest in (("orderId", 1), ("timestamp", 0), ("deadline", 0)):  # what the databases hold
            value = data.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and not lowest <= value <= BIGINT_MAX:
                problems.append(f"{name}: out of range ({lowest} to {BIGINT_MAX})")
        need("causationId", str, nullable=True)
        need("source", str)
        need("payload", dict)
        if data.get("policy", "safe") not in POLICIES:
            problems.append(f"policy: must be one of {', '.join(POLICIES)}")
        event_type = data.get("eventType")
        if isinstance(event_type, str) and event_type not in EVENT_TYPES:
            problems.append(f"eventType: unknown event type {event_type!r}")
        if not problems:
            required = EVENT_TYPES[event_type]
            missing = [f for f in required if f not in data["payload"]]
            if missing:
                problems.append(f"payload: missing {', '.join(missing)}")
            for name in required:
                rule = reason if name == "reason" and "operator" in required else PAYLOAD_RULES.get(name)
                if rule is not None and name in data["payload"]:
                    try:
                        rule(data["payload"][name])
                    except FieldInvalid as exc:
                        problems.append(f"payload.{name}: {exc}")
            try:
                uuid.UUID(data["eventId"])
            except ValueError:
                problems.append("eventId: not a UUID")
        if problems:
            raise InvalidEvent("; ".join(problems))
        known = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        return cls(**known)

    @classmethod
    def from_bytes(cls, raw: bytes | None, max_bytes: int) -> Event:
        if raw is None:
            raise InvalidEvent("empty value")
        if len(raw) > max_bytes:
            raise InvalidEvent(f"value of {len(raw)} bytes exceeds the limit of {max_bytes}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:  # also invalid UTF-8, NaN, and integers beyond 64 bits
            raise InvalidEvent(f"not UTF-8 JSON: {exc}") from None
        return cls.from_dict(data)
