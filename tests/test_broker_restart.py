"""The embedded broker keeps nothing on disk: restarting it loses the topic and every committed
offset. The event log lives in the monitor's database, so /events still tells each saga, and the
services reconnect and go on with new orders."""
import asyncio

import pytest
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from tests.system import wait_until
from tests.test_poison import produce

pytestmark = pytest.mark.system
TOPIC = "choreography.deadline"
# One partition, so that every consumer's position in the old log (`end`, after one saga) can be
# put inside the new log's first saga, two records in: the case that once logged PointUsed before
# OrderCreated (a consumer read the new log from its old position first).
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "15", "SAGA_TOPIC_PARTITIONS": "1"}


async def spacers_first(address: str, spacers: list[bytes]) -> None:
    """Create the topic again (as a service would) and publish `spacers` from offset 0."""
    admin = AIOKafkaAdminClient(bootstrap_servers=address)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    except Exception:
        pass  # a service created it first
    finally:
        await admin.close()
    await produce(address, TOPIC, spacers)


def test_event_log_survives_a_broker_restart_and_sagas_go_on(system):
    system.grant("restart", 1000)
    before = system.settled(system.order("restart", 100)["id"])
    assert before["status"] == "APPROVED"
    logged = system.get("/events", orderId=before["id"])
    end = logged[-1]["offset"] + 1  # where every consumer got to in the old log
    assert end >= 4
    system.restart_broker()
    assert system.get("/events", orderId=before["id"]) == logged
    spacers = [f"restart spacer {n}, not an event".encode() for n in range(end - 2)]
    asyncio.run(spacers_first(f"127.0.0.1:{system.broker_port}", spacers))
    after = system.settled(system.order("restart", 100)["id"], timeout=60)
    assert after["status"] == "APPROVED"
    events = system.get("/events", orderId=after["id"])
    # every consumer read the new log from its start, not from where it was in the old one
    assert [(e["eventType"], e["offset"]) for e in events] == [
        ("OrderCreated", end - 2), ("ExchangeSucceeded", end - 1), ("PointUsed", end), ("OrderPlaced", end + 1)]
    assert system.get("/events", orderId=before["id"]) == logged
    assert system.balance("restart") == 800
    # each of the five consumers dead-lettered each spacer once: nothing was read twice
    services = ["order", "exchange", "point", "deadline", "monitor"]
    letters = wait_until(lambda: len(d := system.get("/dead-letters")) >= 5 * len(spacers) and d, 15, 0.2,
                         "the spacers' dead letters")
    assert sorted(letter["service"] for letter in letters) == sorted(services * len(spacers))
    assert "the broker started again" in system.log_path.read_text(errors="replace")
    assert system.wait_consistent()
