"""The deadline timer: durable across restarts, fires overdue deadlines at once, each exactly once,
never early, and needs no request to wake it (precision is measured by bench/deadline_lateness.py)."""
import time
from collections import Counter

import pytest

pytestmark = pytest.mark.system
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "3"}


def deadline_events(system, oid):
    return [e for e in system.get("/events", orderId=oid) if e["eventType"] == "DeadlineReached"]


def test_armed_deadlines_survive_a_restart_and_fire_once(system):
    system.grant("timer", 1000)
    system.stop_service("exchange")  # keep the sagas open so only the deadline can end them
    ids = [system.order("timer", 10)["id"] for _ in range(3)]
    system.wait_until_armed(ids)
    system.stop_service("deadline")
    time.sleep(3.5)  # every deadline is now overdue, with no deadline process alive
    assert {system.get(f"/orders/{oid}")["status"] for oid in ids} == {"PENDING"}
    system.start_service("deadline")
    for oid in ids:
        assert system.wait_status(oid, "REJECTED DUE TO DEADLINE", timeout=15)
    system.start_service("exchange")
    for oid in ids:
        order = system.settled(oid)
        fired = deadline_events(system, oid)
        assert len({e["eventId"] for e in fired}) == 1, "fired once"
        assert fired[0]["timestamp"] >= order["deadline"], "never early"
    deadlines = {d["orderId"]: d for d in system.get("/deadlines")}
    assert all(deadlines[oid]["status"] == "fired" and deadlines[oid]["firedAt"] >= deadlines[oid]["dueAt"] for oid in ids)
    assert system.balance("timer") == 1000
    assert system.wait_consistent()


def test_timer_fires_without_anyone_asking(system):
    """The seed's timer sometimes slept until /deadlines was called; here nothing calls it."""
    system.stop_service("exchange")
    oid = system.order("timer", 10)["id"]
    order = system.wait_status(oid, "REJECTED DUE TO DEADLINE", timeout=15)  # reads the order service only
    [fired] = deadline_events(system, oid)
    assert fired["timestamp"] >= order["deadline"]
    system.start_service("exchange")
    assert system.settled(oid)["status"] == "REJECTED DUE TO DEADLINE"
    types = Counter(system.event_types(oid))
    assert types["DeadlineReached"] == 1 and types["OrderRejected"] == 1
