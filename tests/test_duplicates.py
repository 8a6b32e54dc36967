"""Every event delivered twice: nothing takes effect twice (inbox), every saga ends consistent."""
from collections import Counter

import pytest

pytestmark = pytest.mark.system
SYSTEM_ENV = {"SAGA_FAULT_DUPLICATE_RATE": "1.0", "SAGA_DEADLINE_SECONDS": "4"}


def test_every_event_twice_takes_effect_once(system):
    system.grant("dup", 1000)
    ids = [system.order("dup", 300)["id"] for _ in range(4)]  # 1200 asked of 1000: one must fail
    orders = [system.settled(oid) for oid in ids]
    approved = [o["id"] for o in orders if o["status"] == "APPROVED"]
    assert len(approved) == 3
    assert [o["status"] for o in orders if o["id"] not in approved] == ["REJECTED DUE TO POINT LIMIT"]
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
