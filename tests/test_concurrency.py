"""Two processes of every service, sharing the partitions of the topic: two orders of
one holder that together overspend, placed at the same moment, end with exactly one APPROVED and
the balance never below zero; concurrent retries with one Idempotency-Key make one order; and two
deadline processes fire each deadline once."""
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

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
    assert min(Decimal(a["point"]) for a in system.get("/points")) >= 0
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


def test_concurrent_retries_with_one_idempotency_key_make_one_order(system):
    """Eight copies of one POST with one Idempotency-Key at the same moment, over both web
    processes (a client that retries on its own timeout), three times over: one order each, spent
    once, the same answer to every copy (sagaboard/idempotency.py)."""
    system.grant("twice", 10000)
    ids = set()
    for attempt in range(3):
        def place(_, attempt=attempt):
            return system.http.post("/orders", json={"holderId": "twice", "currencyId": "1", "amount": 100},
                                    headers={"Idempotency-Key": f"double-click-{attempt}"})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(place, range(8)))
        assert {a.status_code for a in answers} == {201}, [(a.status_code, a.text) for a in answers]
        assert len({a.json()["id"] for a in answers}) == 1, [a.json() for a in answers]
        ids.add(answers[0].json()["id"])
    for order_id in ids:
        system.wait_status(order_id, "APPROVED", timeout=30)
    orders = [o for o in system.get("/orders") if o["holderId"] == "twice"]
    assert sorted(o["id"] for o in orders) == sorted(ids)
    assert system.balance("twice") == 10000 - 3 * 100
