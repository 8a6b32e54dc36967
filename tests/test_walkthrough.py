"""The seed's walkthrough (DESIGN.md section 1), step by step, on one running system.

The tests run in file order and share the holder 'jjy', exactly as a person typing the README's
commands would. Deadline 2 s, the seed's fault delay 3 s (deadline + 1 s)."""
import time

import pytest

pytestmark = pytest.mark.system

CHAIN_REJECTED = ["OrderRejected", "ExchangeCompensated", "PointUseCompensated"]


def test_grant(system):
    assert system.grant("jjy", 10000) == {"userId": "jjy", "point": "10000.00"}
    assert system.balance("jjy") == 10000


def test_happy_path(system):
    order = system.order("jjy", 500)
    assert order["id"] == 1 and order["status"] == "PENDING"
    deadlines = system.get("/deadlines")  # the deadline is armed while the saga runs (or already disarmed)
    order = system.settled(1)
    assert order["status"] == "APPROVED"
    assert [d["orderId"] for d in system.get("/deadlines")] == [1]
    assert system.get("/deadlines")[0]["status"] == "disarmed"
    assert deadlines == [] or deadlines[0]["orderId"] == 1
    assert system.balance("jjy") == 9500
    assert [(t["orderId"], t["point"], t["refundedAt"]) for t in system.get("/transactions")] == [(1, "500.00", None)]
    assert [(e["orderId"], e["point"]) for e in system.get("/exchanges")] == [(1, "500.00")]
    assert system.event_types(1) == ["OrderCreated", "ExchangeSucceeded", "PointUsed", "OrderPlaced"]
    events = system.get("/events", orderId=1)
    assert all(e["partition"] == events[0]["partition"] for e in events)  # one order, one partition
    assert [e["offset"] for e in events] == sorted(e["offset"] for e in events)
    assert [e["causationId"] for e in events[1:]] == [e["eventId"] for e in events[:-1]]


def test_point_limit(system):
    order = system.order("jjy", 50000)
    order = system.settled(order["id"])
    assert order["status"] == "REJECTED DUE TO POINT LIMIT"
    assert "fewer than 50000" in order["reason"]
    assert system.balance("jjy") == 9500
    assert system.event_types(order["id"]) == ["OrderCreated", "ExchangeSucceeded", "PointUseFailed", *CHAIN_REJECTED]
    assert [e["orderId"] for e in system.get("/exchanges")] == [1]  # the compensated exchange is gone


def test_exchange_down(system):
    system.stop_service("exchange")
    order = system.order("jjy", 500)
    rejected = system.wait_status(order["id"], "REJECTED DUE TO DEADLINE", timeout=15)
    assert rejected["reason"]
    system.start_service("exchange")
    order = system.settled(order["id"])
    assert order["status"] == "REJECTED DUE TO DEADLINE"
    assert system.balance("jjy") == 9500
    assert system.event_types(order["id"]) == ["OrderCreated", "DeadlineReached", *CHAIN_REJECTED]
    outcomes = {(o["service"], o["eventType"]): o for o in system.get("/outcomes", orderId=order["id"])}
    assert outcomes[("exchange", "OrderCreated")]["outcome"] == "dropped"  # the late OrderCreated is expired


def test_expired_event_ignored_currency_100(system):
    order = system.order("jjy", 500, currency="100")
    order = system.settled(order["id"], timeout=20)
    assert order["status"] == "REJECTED DUE TO DEADLINE"
    assert system.balance("jjy") == 9500
    assert system.event_types(order["id"]) == ["OrderCreated", "DeadlineReached", *CHAIN_REJECTED]
    system.wait_outcome(order["id"], "exchange", "OrderCreated", "dropped")


def watch_statuses(system, order_id, seconds):
    seen = []
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        status = system.get(f"/orders/{order_id}")["status"]
        if not seen or seen[-1] != status:
            seen.append(status)
        time.sleep(0.05)
    return seen


def test_expiry_race_currency_200_safe(system):
    order = system.order("jjy", 500, currency="200")
    seen = watch_statuses(system, order["id"], 5)  # past the exchange's late commit attempt
    order = system.settled(order["id"], timeout=20)
    assert seen == ["PENDING", "REJECTED DUE TO DEADLINE"]
    assert [h["toStatus"] for h in order["history"]] == ["PENDING", "REJECTED DUE TO DEADLINE"]
    assert system.balance("jjy") == 9500
    assert order["id"] not in [e["orderId"] for e in system.get("/exchanges")]
    assert order["id"] not in [t["orderId"] for t in system.get("/transactions") if t["refundedAt"] is None]
    system.wait_outcome(order["id"], "exchange", "OrderCreated", "dropped")
    assert system.event_types(order["id"]) == ["OrderCreated", "DeadlineReached", *CHAIN_REJECTED]


def test_consistency_empty_under_safe(system):
    time.sleep(1.2)  # the grace period: every order above has settled
    assert system.get("/consistency") == {"count": 0, "anomalies": []}


def test_expiry_race_currency_200_naive_reproduces_the_seed(system):
    order = system.order("jjy", 500, currency="200", policy="naive")
    oid = order["id"]
    system.wait_status(oid, "REJECTED DUE TO DEADLINE", timeout=10)
    system.wait_status(oid, "APPROVED", timeout=20)  # the late PointUsed flips it
    order = system.settled(oid, timeout=20)
    # the seed's wrong end state: REJECTED then APPROVED, points 9000, exchange deleted
    assert order["status"] == "APPROVED"
    assert [h["toStatus"] for h in order["history"]] == ["PENDING", "REJECTED DUE TO DEADLINE", "APPROVED"]
    assert system.balance("jjy") == 9000
    assert oid not in [e["orderId"] for e in system.get("/exchanges")]
    types = system.event_types(oid)
    assert types[:4] == ["OrderCreated", "DeadlineReached", "OrderRejected", "ExchangeSucceeded"]
    # After ExchangeSucceeded two services race: the exchange compensates (its OrderRejected was
    # queued behind the slow OrderCreated) while the point service spends; only PointUsed →
    # OrderPlaced is causal, so the log may hold either interleaving.
    assert sorted(types[4:]) == ["ExchangeCompensated", "OrderPlaced", "PointUsed"]
    assert types.index("PointUsed") < types.index("OrderPlaced")
    system.wait_outcome(oid, "point", "OrderRejected", "ignored")  # point had nothing to refund yet

    def reported():
        return system.get("/consistency")["anomalies"] or None

    anomalies = system_wait(reported)
    rules = {(a["orderId"], a["rule"]) for a in anomalies}
    assert rules == {(oid, "terminal-status-changed"), (oid, "approved-without-exchange")}
    evidence = {a["rule"]: a["evidence"] for a in anomalies}
    assert evidence["terminal-status-changed"] == "REJECTED DUE TO DEADLINE → APPROVED"


def system_wait(predicate):
    from tests.system import wait_until

    return wait_until(predicate, 10, 0.2, "the consistency checker to report")
