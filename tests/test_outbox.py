"""Transactional outbox: nothing leaves before its transaction commits; leftovers leave on restart."""
import asyncio
import json
import threading
import uuid

import pytest
from django.db import connections, transaction

from sagaboard.kernel import broker as kafka
from sagaboard.kernel import outbox
from sagaboard.kernel.events import Event
from sagaboard.kernel.models import OutboxMessage

TOPIC = "outbox-test"
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "20"}


async def read_all(consumer, want: int, seconds: float) -> list:
    got = []
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    while len(got) < want and loop.time() < end:
        batches = await consumer.getmany(timeout_ms=100)
        got += [r for records in batches.values() for r in records]
    return got


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_nothing_is_published_before_commit(broker, settings):
    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    settings.SAGA_TOPIC = f"{TOPIC}-{uuid.uuid4().hex[:6]}"
    event = Event(eventType="OrderCreated", orderId=1, source="order", payload={"holderId": "a", "currencyId": "1", "amount": 1}, deadline=1)
    written, commit = threading.Event(), threading.Event()

    def writer():  # another connection holds the transaction open
        with transaction.atomic(using="order"):
            outbox.emit("order", event)
            written.set()
            commit.wait(10)
        connections.close_all()

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        stopping = asyncio.Event()
        await kafka.ensure_topic(stopping)
        producer = kafka.producer()
        consumer = kafka.consumer(f"g-{uuid.uuid4().hex[:6]}", session_timeout_ms=2000, heartbeat_interval_ms=300)
        await producer.start()
        await consumer.start()
        relay_thread = ThreadPoolExecutor(1)
        relay = outbox.Relay("order", producer, settings.SAGA_TOPIC, 0.01, relay_thread)
        thread = threading.Thread(target=writer)
        thread.start()
        assert written.wait(10)
        publishing = asyncio.create_task(relay.publish_pending())
        before_commit = await read_all(consumer, 1, 1.5)
        commit.set()
        await publishing
        thread.join(10)
        await relay.publish_pending()  # on PostgreSQL the first pass saw nothing and ended
        after_commit = await read_all(consumer, 1, 10)
        await consumer.stop()
        await producer.stop()
        relay_thread.submit(connections.close_all).result()
        relay_thread.shutdown()
        return before_commit, after_commit, relay.published

    before_commit, after_commit, published = asyncio.run(scenario())
    assert before_commit == []
    assert published == 1
    assert [json.loads(r.value)["eventId"] for r in after_commit] == [event.eventId]
    assert dict(after_commit[0].headers)["type"] == b"OrderCreated"
    row = OutboxMessage.objects.using("order").get(event_id=event.eventId)
    assert row.published_at is not None and (row.partition, row.offset) == (after_commit[0].partition, after_commit[0].offset)


@pytest.mark.system
def test_events_left_in_the_outbox_are_published_on_restart_in_order(system):
    """The order service's relay is down: orders placed meanwhile wait in its outbox, and leave in
    the order they were written when it starts again."""
    system.grant("outbox", 1000)
    system.stop_service("order")
    ids = [system.order("outbox", 100)["id"] for _ in range(5)]
    import time

    time.sleep(1.0)
    assert all(system.event_types(oid) == [] for oid in ids), "nothing was published while the relay was down"
    system.start_service("order")
    orders = [system.settled(oid) for oid in ids]
    assert {o["status"] for o in orders} == {"APPROVED"}
    created = [e for e in system.get("/events", type="OrderCreated") if e["orderId"] in ids]
    assert sorted(e["orderId"] for e in created) == ids
    by_partition = {}
    for e in created:
        by_partition.setdefault(e["partition"], []).append((e["offset"], e["orderId"]))
    for rows in by_partition.values():  # within a partition, the offsets follow the writing order
        assert [oid for _, oid in sorted(rows)] == sorted(oid for _, oid in rows)
    assert system.balance("outbox") == 500
