"""The embedded broker keeps nothing on disk: restarting it loses the topic and every committed
offset. The event log lives in the monitor's database, so /events still tells each saga, and the
services reconnect and go on with new orders."""
import pytest

pytestmark = pytest.mark.system
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "15"}


def test_event_log_survives_a_broker_restart_and_sagas_go_on(system):
    system.grant("restart", 1000)
    before = system.settled(system.order("restart", 100)["id"])
    assert before["status"] == "APPROVED"
    logged = system.get("/events", orderId=before["id"])
    system.supervisorctl("restart", "broker")
    assert system.get("/events", orderId=before["id"]) == logged
    after = system.settled(system.order("restart", 100)["id"], timeout=60)
    assert after["status"] == "APPROVED"
    assert system.event_types(after["id"]) == ["OrderCreated", "ExchangeSucceeded", "PointUsed", "OrderPlaced"]
    assert system.get("/events", orderId=before["id"]) == logged
    assert system.balance("restart") == 800
    assert system.wait_consistent()
