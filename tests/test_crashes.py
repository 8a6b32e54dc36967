"""Crashes at every named point (os._exit, as a kill would): supervisord restarts the service,
the outbox republishes what was not marked published, the inbox drops what was already applied,
and every saga still ends consistent with no point spent or refunded twice."""
import pytest

from tests.system import wait_until

pytestmark = pytest.mark.system
SYSTEM_ENV = {
    # per batch and per publish (several records each), so higher than a per-record rate would be
    "SAGA_FAULT_CRASH": "handler_after_commit:0.1,relay_after_publish:0.1,relay_before_publish:0.05,handler_mid:0.05",
    "SAGA_DEADLINE_SECONDS": "30",
}
ORDERS = 24


def test_sagas_survive_crashes(system):
    system.grant("crash", 5000)
    ids = [system.order("crash", 500)["id"] for _ in range(ORDERS)]  # 12000 asked, 5000 held
    orders = [system.settled(oid, timeout=150) for oid in ids]
    approved = [o for o in orders if o["status"] == "APPROVED"]
    assert 1 <= len(approved) <= 10, [o["status"] for o in orders]
    assert system.balance("crash") == 5000 - 500 * len(approved)
    live = [t for t in system.get("/transactions") if t["refundedAt"] is None]
    assert sorted(t["orderId"] for t in live) == sorted(o["id"] for o in approved)
    assert system.wait_consistent(timeout=30)
    crashes = system.log_path.read_text(errors="replace").count("fault injection: crashing at")
    assert crashes >= 3, "the faults were injected"
    # each service applied each event once, however often it was delivered
    for oid in ids:
        applied = [(o["service"], o["eventId"]) for o in system.get("/outcomes", orderId=oid)]
        assert len(applied) == len(set(applied))
    # and nothing is still waiting in an outbox
    wait_until(lambda: all(s["state"] == "running" for s in system.get("/services")), 30, what="every service running")
