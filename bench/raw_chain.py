"""The raw limit of this machine and broker: a three-hop chain of bare aiokafka processes.

Each hop is its own process that consumes one topic and produces every record to the next, with
the producer settings Sagaboard's services use (acks=all, linger 0) and the same fetch wait. A
record goes topic 1 → hop → topic 2 → hop → topic 3 → hop → topic 4, like an order's
OrderCreated → ExchangeSucceeded → PointUsed → OrderPlaced, with nothing else: no database, no
inbox, no outbox. `bench/throughput.py` runs it on the broker of the system it measures, in the
same run, and puts every Sagaboard figure next to it.

    python bench/raw_chain.py hop BOOTSTRAP SOURCE TARGET FETCH_MAX_WAIT_MS   (one hop; the bench starts three)
"""
from __future__ import annotations

import asyncio
import itertools
import json
import math
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

HOPS = 3


async def hop(bootstrap: str, source: str, target: str, fetch_max_wait_ms: int) -> None:
    """Forward every record of `source` to `target` until SIGTERM; prints `ready` once it reads."""
    stopping = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stopping.set)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=0)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", fetch_max_wait_ms=fetch_max_wait_ms)
    await producer.start()
    await consumer.start()
    try:
        partitions = await _partitions(consumer, source)
        consumer.assign([TopicPartition(source, p) for p in partitions])
        print("ready", flush=True)
        while not stopping.is_set():
            batches = await consumer.getmany(timeout_ms=200, max_records=1000)
            sends = [await producer.send(target, r.value, key=r.key) for records in batches.values() for r in records]
            if sends:
                await asyncio.gather(*sends)
    finally:
        await consumer.stop()
        await producer.stop()


async def _partitions(client, topic: str) -> list[int]:
    for _ in range(100):
        partitions = client.partitions_for_topic(topic)
        if partitions:
            return sorted(partitions)
        await client.topics()
        await asyncio.sleep(0.1)
    raise RuntimeError(f"topic {topic} has no partitions")


@dataclass
class RawResult:
    burst_per_second: float
    burst_p50_ms: float
    burst_p99_ms: float
    one_p50_ms: float
    one_p99_ms: float
    cpu_ms_per_order: float  # the three hops' CPU (the broker's is counted by the caller)


class RawChain:
    """Three hop processes on fresh topics of `bootstrap`; `measure()` sends through them."""

    def __init__(self, bootstrap: str, partitions: int, fetch_max_wait_ms: int):
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.fetch_max_wait_ms = fetch_max_wait_ms
        run = uuid.uuid4().hex[:8]
        self.topics = [f"raw.{run}.{i}" for i in range(HOPS + 1)]
        self.procs: list[subprocess.Popen] = []

    async def start(self) -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await admin.start()
        try:
            await admin.create_topics([NewTopic(t, self.partitions, 1) for t in self.topics])
        finally:
            await admin.close()
        for source, target in itertools.pairwise(self.topics):
            self.procs.append(subprocess.Popen(
                [sys.executable, __file__, "hop", self.bootstrap, source, target, str(self.fetch_max_wait_ms)],
                stdout=subprocess.PIPE, text=True))
        for proc in self.procs:  # each prints "ready" once it has its partitions
            line = await asyncio.wait_for(asyncio.to_thread(proc.stdout.readline), 60)
            if line.strip() != "ready":
                raise RuntimeError(f"a hop did not start: {line!r}")

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)

    def pids(self) -> list[int]:
        return [p.pid for p in self.procs]

    async def measure(self, burst: int, one_at_a_time: int, cpu_of) -> RawResult:
        """A burst of `burst` records, then `one_at_a_time` records each sent after the previous
        arrived; `cpu_of(pids)` reads CPU seconds. Bounded: 120 s for the burst, 10 s a record."""
        producer = AIOKafkaProducer(bootstrap_servers=self.bootstrap, acks="all", linger_ms=0)
        consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap, group_id=None, enable_auto_commit=False,
                                    auto_offset_reset="earliest", fetch_max_wait_ms=self.fetch_max_wait_ms)
        await producer.start()
        await consumer.start()
        arrived: dict[int, float] = {}
        new_arrival = asyncio.Event()

        async def receive():
            while True:
                batches = await consumer.getmany(timeout_ms=200, max_records=5000)
                now = time.perf_counter()
                for records in batches.values():
                    for record in records:
                        arrived.setdefault(int(record.key), now)
                if batches:
                    new_arrival.set()

        try:
            sink = self.topics[-1]
            consumer.assign([TopicPartition(sink, p) for p in await _partitions(consumer, sink)])
            receiver = asyncio.create_task(receive())
            body = json.dumps({"eventType": "OrderCreated", "orderId": 0, "payload": {"holderId": "raw", "amount": 1},
                               "eventId": str(uuid.uuid4()), "timestamp": 0, "deadline": 0}).encode()
            cpu_before = cpu_of(self.pids())
            sent: dict[int, float] = {}
            start = time.perf_counter()
            for i in range(burst):
                sent[i] = time.perf_counter()
                await producer.send(self.topics[0], body, key=str(i).encode())
            await producer.flush()
            await _until(lambda: len(arrived) >= burst, 120, new_arrival, "the raw burst")
            elapsed = max(arrived.values()) - start
            cpu = cpu_of(self.pids()) - cpu_before
            burst_latencies = [(arrived[i] - sent[i]) * 1000 for i in range(burst)]
            one = []
            for i in range(burst, burst + one_at_a_time):
                t0 = time.perf_counter()
                await (await producer.send(self.topics[0], body, key=str(i).encode()))
                await _until(lambda i=i: i in arrived, 10, new_arrival, "a raw record")
                one.append((arrived[i] - t0) * 1000)
            receiver.cancel()
            return RawResult(burst / elapsed, percentile(burst_latencies, 50), percentile(burst_latencies, 99),
                             percentile(one, 50), percentile(one, 99), cpu * 1000 / burst)
        finally:
            await consumer.stop()
            await producer.stop()


async def _until(predicate, seconds: float, wake: asyncio.Event, what: str) -> None:
    end = time.monotonic() + seconds
    while not predicate():
        left = end - time.monotonic()
        if left <= 0:
            raise TimeoutError(f"timed out after {seconds} s waiting for {what}")
        wake.clear()
        try:
            await asyncio.wait_for(wake.wait(), min(left, 0.5))
        except TimeoutError:
            pass


def percentile(values: list[float], p: float) -> float:
    """The p-th percentile (nearest rank) of `values`; NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


if __name__ == "__main__":
    if len(sys.argv) == 6 and sys.argv[1] == "hop":
        asyncio.run(hop(sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
    else:
        sys.exit(__doc__)
