"""Two processes of every service, sharing the partitions of the topic: two orders of
one holder that together overspend, placed at the same moment, end with exactly one APPROVED and
the balance never below zero; and two deadline processes fire each deadline once."""
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.system import wait_until

pytestmark = pytest.mark.system
SYSTEM_REPLICAS = 2
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "10", "SAGA_TOPIC_PARTITIONS": "4"}
PAIRS = 12


def test_work_is_shared_between_two_processes(system):
    """Each process of a service ends up with an equal share of the partitions (leases in the
    service's database, sagaboard/kernel/leases.py): disjoint, and together all of them."""

    def shared_out():
        shares = {}
        for service in system.get("/services"):
            beats = service["heartbeats"]
            assert len(beats) <= 2, service
            assignments = [set(beat["assignment"]) for beat in beats]
            shares[service["name"]] = assignments
            if len(beats) < 2 or sorted(map(len, assignments)) != [2, 2] or set.union(*assignments) != {0, 1, 2, 3}:
                return None
        return shares

    wait_until(shared_out, 20, 0.2, "two processes of every service to hold two partitions each")


def test_simultaneous_orders_never_overspend(system):
    holders = [f"race{i}" for i in range(PAIRS)]
    for holder in holders:
        system.grant(holder, 1000)
    bodies = [(holder, 600) for holder in holders for _ in range(2)]
    with ThreadPoolExecutor(8) as pool:
        placed = list(pool.map(lambda b: system.order(*b), bodies))
    orders = [system.settled(o["id"]) for o in placed]
    by_holder = {}
    for order in orders:
        by_holder.setdefault(order["holderId"], []).append(order["status"])
    partitions = {e["partition"] for e in system.get("/events", type="OrderCreated")}
    assert len(partitions) > 1, "the orders were spread over partitions owned by different processes"
    for holder, statuses in by_holder.items():
        assert sorted(statuses) == ["APPROVED", "REJECTED DUE TO POINT LIMIT"], holder
        assert system.balance(holder) == 400
    assert min(a["point"] for a in system.get("/points")) >= 0
    assert system.wait_consistent()


def test_two_deadline_processes_fire_each_deadline_once(system):
    system.grant("twotimers", 100)
    system.stop_service("exchange")
    ids = [system.order("twotimers", 1)["id"] for _ in range(6)]
    for oid in ids:
        system.wait_status(oid, "REJECTED DUE TO DEADLINE", timeout=30)
    system.start_service("exchange")
    for oid in ids:
        system.settled(oid)
        fired = Counter(e["eventId"] for e in system.get("/events", orderId=oid, type="DeadlineReached"))
        assert len(fired) == 1
    assert system.wait_consistent()
