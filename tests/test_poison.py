"""Malformed, unknown or oversized values on the topic go to every consumer's dead-letter store
with the reason, the original bytes and their position, and consumption goes on."""
import asyncio
import json
import uuid

import pytest
from aiokafka import AIOKafkaProducer

from tests.system import wait_until

pytestmark = pytest.mark.system
SYSTEM_ENV = {"SAGA_MAX_EVENT_BYTES": "4096"}

# value -> (its headers, the reason its dead letter gives)
POISON = {
    b"this is not json": ([], "not UTF-8 JSON"),
    b"\xff\xfe\x00": ([], "not UTF-8 JSON"),
    json.dumps({"eventType": "OrderCreated"}).encode(): ([], "required"),
    json.dumps({
        "eventId": str(uuid.uuid4()), "eventType": "OrderTeleported", "orderId": 1, "timestamp": 1, "deadline": 2,
        "causationId": None, "source": "mars", "policy": "safe", "payload": {},
    }).encode(): ([], "unknown event type"),
    json.dumps({"padding": "x" * 5000}).encode(): ([], "exceeds the limit"),
    # headers Kafka allows: a null value (it stopped every service's batch loop), bytes that are not UTF-8
    b"[]": ([("type", None)], "not a JSON object"),
    b"{}": ([("type", b"\xff\xfe"), ("type", b"")], "required"),
}


async def produce(address, topic, values):
    """Publish each of `values` (bytes, or (bytes, headers)) to `topic`, in order, with one key."""
    producer = AIOKafkaProducer(bootstrap_servers=address)
    await producer.start()
    try:
        for item in values:
            value, headers = item if isinstance(item, tuple) else (item, [])
            await producer.send_and_wait(topic, value=value, key=b"poison", headers=headers)
    finally:
        await producer.stop()


def test_poison_is_dead_lettered_and_consumption_goes_on(system):
    asyncio.run(produce(f"127.0.0.1:{system.broker_port}", "choreography.deadline",
                        [(value, headers) for value, (headers, _) in POISON.items()]))
    system.grant("after-poison", 100)
    order = system.settled(system.order("after-poison", 50)["id"])
    assert order["status"] == "APPROVED"  # every consumer went on past the poison

    def all_dead_lettered():
        letters = system.get("/dead-letters")
        return letters if len(letters) == len(POISON) * 5 else None

    letters = wait_until(all_dead_lettered, 15, 0.2, "each of the 5 consumers to dead-letter each poison value")
    for service in ("order", "exchange", "point", "deadline", "monitor"):
        mine = [letter for letter in letters if letter["service"] == service]
        assert len(mine) == len(POISON)
        for letter, (value, (_, reason)) in zip(sorted(mine, key=lambda mine_letter: mine_letter["offset"]), POISON.items(), strict=True):
            assert reason in letter["error"]
            assert letter["topic"] == "choreography.deadline" and letter["partition"] >= 0
            assert letter["value"] == value.decode("utf-8", "replace")[:2000]
