"""The event envelope of DESIGN.md section 3."""
import json
import uuid

import pytest

from sagaboard.kernel.events import EVENT_TYPES, Event, InvalidEvent

LIMIT = 64 * 1024


def valid(**changes):
    data = {
        "eventId": str(uuid.uuid4()), "eventType": "ExchangeSucceeded", "orderId": 17, "timestamp": 1764130000123,
        "deadline": 1764130010123, "causationId": None, "source": "exchange", "policy": "safe",
        "payload": {"holderId": "jjy", "currencyId": "1", "amount": 500, "point": 500.0},
    }
    data.update(changes)
    return json.dumps(data).encode()


def test_round_trip_keeps_every_field():
    event = Event.from_bytes(valid(), LIMIT)
    assert json.loads(event.to_bytes()) == json.loads(valid(eventId=event.eventId))
    assert event.key == b"17"


def test_caused_event_carries_the_saga():
    cause = Event.from_bytes(valid(policy="naive"), LIMIT)
    effect = cause.caused("PointUsed", "point", {"holderId": "jjy", "point": 500.0})
    assert (effect.orderId, effect.deadline, effect.policy, effect.causationId) == (17, cause.deadline, "naive", cause.eventId)
    assert effect.eventId != cause.eventId


def test_expiry_is_now_at_or_after_the_deadline():
    event = Event.from_bytes(valid(deadline=1000), LIMIT)
    assert not event.expired(999) and event.expired(1000) and event.expired(1001)


@pytest.mark.parametrize(
    "raw, message",
    [
        (b"\xff\xfe not utf-8", "not UTF-8 JSON"),
        (b"{not json", "not UTF-8 JSON"),
        (b"[1,2]", "not a JSON object"),
        (valid(eventType="OrderTeleported"), "unknown event type"),
        (valid(orderId="17"), "orderId: expected"),
        (valid(timestamp=True), "timestamp: expected"),
        (valid(policy="yolo"), "policy: must be one of"),
        (valid(payload={"holderId": "jjy"}), "payload: missing"),
        (valid(eventId="not-a-uuid"), "eventId: not a UUID"),
        (valid(source=None), "source: required"),
        (b"x" * (LIMIT + 1), "exceeds the limit"),
        (None, "empty value"),
    ],
)
def test_invalid_values_are_refused_with_a_reason(raw, message):
    with pytest.raises(InvalidEvent, match=message):
        Event.from_bytes(raw, LIMIT)


def test_every_type_of_the_contract_is_known():
    assert {"OrderCreated", "ExchangeSucceeded", "ExchangeFailed", "ExchangeCompensated", "PointUsed", "PointUseFailed",
            "PointUseCompensated", "OrderPlaced", "OrderRejected", "DeadlineReached"} <= set(EVENT_TYPES)
