"""Every event delivered twice: nothing takes effect twice (inbox), every saga ends consistent."""
from collections import Counter

import pytest

pytestmark = pytest.mark.system
SYSTEM_ENV = {"SAGA_FAULT_DUPLICATE_RATE": "1.0", "SAGA_DEADLINE_SECONDS": "4"}


def test_every_event_twice_takes_effect_once(system):
    system.grant("dup", 1000)
    approved = [system.order("dup", 300)["id"] for _ in range(3)]  # 900 of 1000
    limited = system.order("dup", 300)["id"]  # 100 left: point limit
    for oid in approved + [limited]:
        system.settled(oid)
    statuses = {oid: system.get(f"/orders/{oid}")["status"] for oid in approved + [limited]}
    assert sorted(statuses.values()).count("APPROVED") == 3
    assert statuses[limited] == "REJECTED DUE TO POINT LIMIT"
    assert system.balance("dup") == 100  # granted once, 3 × 300 spent once each
    assert sorted(t["orderId"] for t in system.get("/transactions") if t["refundedAt"] is None) == sorted(approved)
    assert sorted(e["orderId"] for e in system.get("/exchanges")) == sorted(approved)
    for oid in approved:
        events = system.get("/events", orderId=oid)
        copies = Counter(e["eventId"] for e in events)
        assert set(copies.values()) == {2}, "the relay delivered every event twice"
        assert [e["eventType"] for e in events][::2] == ["OrderCreated", "ExchangeSucceeded", "PointUsed", "OrderPlaced"]
        # each service applied each of its events once: one inbox record per event
        outcomes = Counter((o["service"], o["eventId"]) for o in system.get("/outcomes", orderId=oid))
        assert set(outcomes.values()) == {1}
    assert system.wait_consistent()
