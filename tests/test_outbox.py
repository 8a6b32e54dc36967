"""Transactional outbox: nothing leaves before its transaction commits; leftovers leave on restart."""
import asyncio
import json
import threading
import time
import uuid

import pytest
from django.db import connections, transaction

from sagaboard.kernel import broker as kafka, outbox
from sagaboard.kernel.events import Event
from sagaboard.kernel.models import OutboxMessage
from tests.system import wait_until

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
    assert row.published_at is not None


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_publish_after_commit_that_fails_is_kept_and_the_relay_publishes_it(broker, settings):
    """The publisher of the writing process cannot reach the broker (its producer is closed): the
    committed row stays unpublished and first in the publisher's line, and the relay publishes it
    once it is older than its grace period. Nothing is lost, nothing published twice here."""
    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    settings.SAGA_TOPIC = f"{TOPIC}-{uuid.uuid4().hex[:6]}"
    event = Event(eventType="OrderCreated", orderId=2, source="order", payload={"holderId": "a", "currencyId": "1", "amount": 1}, deadline=1)

    def write():
        with transaction.atomic(using="order"):
            outbox.emit("order", event)

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        stopping = asyncio.Event()
        await kafka.ensure_topic(stopping)
        producer, dead = kafka.producer(), kafka.producer()
        consumer = kafka.consumer(f"g-{uuid.uuid4().hex[:6]}", session_timeout_ms=2000, heartbeat_interval_ms=300)
        for client in (producer, dead, consumer):
            await client.start()
        await dead.stop()  # every send now fails
        thread = ThreadPoolExecutor(1)
        publisher = outbox.Publisher(dead, settings.SAGA_TOPIC, thread)
        outbox.install(publisher)
        publishing = asyncio.create_task(publisher.run(stopping))
        await asyncio.sleep(0.1)
        await asyncio.get_running_loop().run_in_executor(thread, write)
        await asyncio.sleep(1.0)
        held = [row.event_id for _, row in publisher.queue]
        unpublished = await asyncio.get_running_loop().run_in_executor(
            thread, lambda: OutboxMessage.objects.using("order").filter(published_at__isnull=True).count())
        relay = outbox.Relay("order", producer, settings.SAGA_TOPIC, 0.5, thread)
        published = await relay.publish_pending(grace_seconds=0.5)
        got = await read_all(consumer, 1, 10)
        stopping.set()
        await publishing
        outbox.install(None)
        for client in (consumer, producer):
            await client.stop()
        thread.submit(connections.close_all).result()
        thread.shutdown()
        return held, unpublished, published, got

    held, unpublished, published, got = asyncio.run(scenario())
    assert [str(e) for e in held] == [event.eventId] and unpublished == 1
    assert published == 1
    assert [json.loads(r.value)["eventId"] for r in got] == [event.eventId]
    assert OutboxMessage.objects.using("order").get(event_id=event.eventId).published_at is not None


LINGER_MS = 1000  # far longer than a publish: a wait of this length is unmistakable


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_an_idle_publisher_sends_at_once_and_a_busy_one_lingers_to_join_commits(broker, settings, monkeypatch):
    """SAGA_PUBLISH_LINGER_MS lets more commits join one produce request, but an idle publisher
    paid it on every hop of a lone order (5.4-6.4 ms of each hop's ~20 ms, one order at a time).
    So one that did not publish twice within two lingers sends at once: the first publish, and
    the second (one publish is a lone order's hop, not load; with one within 50 ms as the rule,
    a lone order's hops lingered whenever they came less than 50 ms apart). After two it lingers,
    and what is committed meanwhile goes out in one produce request. After each ack it rings the
    doorbells with the event types it published (doorbell.type_ring)."""
    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    settings.SAGA_TOPIC = f"{TOPIC}-{uuid.uuid4().hex[:6]}"
    rows, rang = [], []
    for order_id, event_type in ((11, "OrderCreated"), (12, "OrderCreated"), (13, "OrderCreated"), (14, "OrderRejected")):
        event = Event(eventType=event_type, orderId=order_id, source="order",
                      payload={"holderId": "a", "currencyId": "1", "amount": 1}, deadline=1)
        with transaction.atomic(using="order"):
            outbox.emit("order", event)  # no publisher installed: nothing is submitted
        rows.append(OutboxMessage.objects.using("order").get(event_id=event.eventId))
    sent, acked = [], asyncio.Event()
    real_publish = outbox.publish

    async def counted(producer, topic, batch):
        await real_publish(producer, topic, batch)
        sent.append(len(batch))
        acked.set()

    monkeypatch.setattr(outbox, "publish", counted)

    async def scenario():
        from concurrent.futures import ThreadPoolExecutor

        stopping = asyncio.Event()
        await kafka.ensure_topic(stopping)
        producer = kafka.producer()
        await producer.start()
        thread = ThreadPoolExecutor(1)
        publisher = outbox.Publisher(producer, settings.SAGA_TOPIC, thread, ring=rang.append, linger_ms=LINGER_MS)
        publishing = asyncio.create_task(publisher.run(stopping))

        async def published(row) -> float:
            """Submit `row`; the seconds until the broker acked it."""
            started = time.monotonic()
            publisher.submit("order", [row])
            await asyncio.wait_for(acked.wait(), 10)
            acked.clear()
            return time.monotonic() - started

        try:
            await asyncio.sleep(0.1)
            assert not publisher.busy(), "a publisher that never published is idle"
            took = [await published(rows[0])]
            assert not publisher.busy(), "after one publish it is still idle"
            took.append(await published(rows[1]))
            assert publisher.busy(), "after two publishes close together it is busy"
            publisher.submit("order", rows[2:3])  # committed right after: it waits for more
            await asyncio.sleep(0.1)
            publisher.submit("order", rows[3:])
            await asyncio.sleep(LINGER_MS / 1000 / 2)
            lingering = list(sent)
            await asyncio.wait_for(acked.wait(), 10)
            # its publishes are now a linger apart, which keeps it busy (the window is two lingers)
            assert publisher.busy(), "a publish a linger after the last one made it idle"
            return took, lingering, list(sent)
        finally:
            stopping.set()
            await publishing
            await producer.stop()
            thread.submit(connections.close_all).result()
            thread.shutdown()

    took, lingering, sent_all = asyncio.run(scenario())
    assert all(t < LINGER_MS / 1000 / 2 for t in took), f"the first two publishes took {took} s: one lingered"
    assert lingering == [1, 1], "a busy publisher waits its linger before the next publish"
    assert sent_all == [1, 1, 2], f"produce requests of {sent_all} rows: the two commits after the second publish must join one"
    assert rang == [{"OrderCreated"}, {"OrderCreated"}, {"OrderCreated", "OrderRejected"}]
    assert OutboxMessage.objects.using("order").filter(published_at__isnull=True).count() == 0


@pytest.mark.system
def test_the_web_publishes_what_it_commits_and_leftovers_leave_in_order_on_restart(system):
    """The web process publishes an order's OrderCreated right after its commit: with the order
    service (the order database's relay) stopped, the exchange still exchanges it. Rows committed
    and never published (as a web process that died after its commit leaves them: here, orders
    placed from a shell, which has no publisher) leave in the order they were written when the
    order service's relay starts."""
    system.grant("outbox", 1000)
    system.stop_service("order")
    first = system.order("outbox", 100)["id"]
    wait_until(lambda: first in [e["orderId"] for e in system.get("/exchanges")], 15, 0.1, "the exchange to exchange it")
    placed = system.manage("shell", "--no-imports", "-c", "from services.order.services import place_order; "
                           "print(*[place_order(holder_id='outbox', currency_id='1', amount=100).id for _ in range(5)])")
    ids = [int(i) for i in placed.split()]
    time.sleep(1.5)
    assert all(system.event_types(oid) == [] for oid in ids), "nobody published the shell's rows"
    system.start_service("order")
    orders = [system.settled(oid) for oid in [first, *ids]]
    assert {o["status"] for o in orders} == {"APPROVED"}
    created = [e for e in system.get("/events", type="OrderCreated") if e["orderId"] in ids]
    assert sorted(e["orderId"] for e in created) == ids
    by_partition = {}
    for e in created:
        by_partition.setdefault(e["partition"], []).append((e["offset"], e["orderId"]))
    for rows in by_partition.values():  # within a partition, the offsets follow the writing order
        assert [oid for _, oid in sorted(rows)] == sorted(oid for _, oid in rows)
    assert system.balance("outbox") == 400


@pytest.mark.django_db(databases="__all__", transaction=True)
def test_a_web_publisher_takes_the_commits_of_the_request_that_starts_it(broker, settings, monkeypatch):
    """A web process starts its publisher with its first HTTP request (sagaboard/asgi.py), and
    that request commits in a worker thread while the publisher's producer still connects. Its
    rows used to be left to the relay, seconds later: after a web restart in CI, the first order
    outlived its 2 s deadline. Here the commit comes before the publisher's task has run at all;
    the publisher must still send it once connected."""
    from sagaboard.webpublisher import WebPublisher

    settings.KAFKA_BOOTSTRAP_SERVERS = broker
    settings.SAGA_CLUSTER_ID = ""  # the test's own broker, not an instance's
    settings.SAGA_TOPIC = f"{TOPIC}-{uuid.uuid4().hex[:6]}"
    event = Event(eventType="OrderCreated", orderId=21, source="order",
                  payload={"holderId": "a", "currencyId": "1", "amount": 1}, deadline=1)
    with transaction.atomic(using="order"):
        outbox.emit("order", event)  # no publisher installed yet: nothing is submitted
    row = OutboxMessage.objects.using("order").get(event_id=event.eventId)
    sent, real_publish = [], outbox.publish

    async def counted(producer, topic, batch):
        await real_publish(producer, topic, batch)
        sent.extend(r.event_id for r in batch)

    monkeypatch.setattr(outbox, "publish", counted)

    async def scenario():
        web = WebPublisher()
        web.ensure_started()
        outbox.after_commit("order", [row])  # the first request's commit, before the task has run
        try:
            deadline = time.monotonic() + 15
            while not sent and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        finally:
            await web.stop()
        return list(sent)

    assert asyncio.run(scenario()) == [row.event_id]
