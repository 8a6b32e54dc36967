"""An idle system sleeps: consumers with nothing to fetch park (no fetch at all), and the
doorbells of the publishers wake them when there is something (sagaboard/kernel/doorbell.py).
With the safety look a minute away, an order still goes through: the doorbells woke every hop."""
import time

import pytest

from tests.system import wait_until

pytestmark = pytest.mark.system
SYSTEM_ENV = {"SAGA_IDLE_POLL_MS": "60000", "SAGA_DEADLINE_SECONDS": "30"}


def parked(system) -> dict[str, bool]:
    return {s["name"]: all(b["parkedSince"] for b in s["heartbeats"]) and bool(s["heartbeats"])
            for s in system.get("/services")}


def test_idle_consumers_park_and_the_doorbells_wake_them(system):
    system.grant("idle", 100)
    wait_until(lambda: all(parked(system).values()), 15, 0.2, "every service to park")
    time.sleep(1.2)  # past a heartbeat: still parked, nothing fetched
    assert all(parked(system).values()), parked(system)
    order = system.order("idle", 10)
    assert system.settled(order["id"], timeout=20)["status"] == "APPROVED"
    assert system.balance("idle") == 90
    wait_until(lambda: all(parked(system).values()), 15, 0.2, "every service to park again")
