"""No consumer misses a record when several producers write to one partition of the embedded broker
(sagaboard/kernel/gaps.py).

Tansu 0.6.0 can make a record readable before the one given the offset ahead of it: a fetch at
that offset then answers with the records after it, aiokafka moves past it, and the consumer never
reads it (CI, 2026-12-01: the exchange service never saw one order's OrderCreated). Here four
producers write to one partition of a real Tansu, one record per request, until the consumers have
met at least one such gap; four consumers fetching through Parking, as the services do, must each
read every offset from 0, in order, with none missing.
"""
import asyncio
import subprocess
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sagaboard.kernel.broker import tansu_command
from sagaboard.kernel.doorbell import Parking, Ringer
from tests.system import free_port, listening, wait_until

TOPIC = "gaps.test"
PRODUCERS = 4
CONSUMERS = 4
MIN_SECONDS, MAX_SECONDS = 3, 40  # producing lasts at least this, and until a gap was met (measured: about one a second)
DRAIN_SECONDS = 20


def test_consumers_read_every_offset_while_producers_race_on_one_partition(tmp_path):
    port = free_port()
    broker = subprocess.Popen(tansu_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(port), 10, 0.05, "the broker to listen")
        sent, read, gaps_met = asyncio.run(_race(f"127.0.0.1:{port}", tmp_path))
    finally:
        broker.terminate()
        broker.wait(10)
    assert sent > 1000, f"only {sent} records were written"
    for j, offsets in enumerate(read):
        missing = sorted(set(range(sent)) - set(offsets))
        assert not missing, f"consumer {j} never read offsets {missing[:10]} (of {sent})"
        assert offsets == list(range(sent)), f"consumer {j} read offsets out of order"
    assert gaps_met >= 1, "no consumer met a gap: the race was not reproduced, so this run proved nothing"


async def _race(bootstrap: str, where) -> tuple[int, list[list[int]], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
    finally:
        await admin.close()
    tp = TopicPartition(TOPIC, 0)
    producing, stopping = asyncio.Event(), asyncio.Event()
    producing.set()
    sent = [0]
    ringer = Ringer(where)
    parkings = [Parking(where, f"reader{j}", True, linger_ms=5, poll_ms=60_000, fetch_wait_ms=5) for j in range(CONSUMERS)]
    read: list[list[int]] = [[] for _ in range(CONSUMERS)]

    async def produce() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
        await producer.start()
        try:
            while producing.is_set():
                await producer.send_and_wait(TOPIC, b"x", partition=0)
                sent[0] += 1
                ringer.ring()
        finally:
            await producer.stop()

    async def consume(j: int) -> None:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=5)
        await consumer.start()
        parking = parkings[j]
        parking.open()
        try:
            consumer.assign([tp])
            consumer.seek(tp, 0)
            while not stopping.is_set():
                batches = await parking.fetch(consumer, stopping)
                read[j] += [r.offset for r in batches.get(tp, [])]
        finally:
            parking.close()
            await consumer.stop()

    readers = [asyncio.create_task(consume(j)) for j in range(CONSUMERS)]
    writers = [asyncio.create_task(produce()) for _ in range(PRODUCERS)]
    started = time.monotonic()
    while time.monotonic() - started < MAX_SECONDS and any(not t.done() for t in readers):
        await asyncio.sleep(0.2)
        if time.monotonic() - started >= MIN_SECONDS and any(p.gaps.read_again for p in parkings):
            break
    producing.clear()
    await asyncio.gather(*writers)
    drained_by = time.monotonic() + DRAIN_SECONDS
    while time.monotonic() < drained_by and any(len(r) < sent[0] for r in read) and any(not t.done() for t in readers):
        ringer.ring()  # the last records' rings may have come before a consumer parked
        await asyncio.sleep(0.1)
    stopping.set()
    for parking in parkings:
        parking.changed.set()
    await asyncio.gather(*readers)
    ringer.close()
    return sent[0], read, sum(p.gaps.read_again for p in parkings)
