"""A parked consumer takes a late fetch answer at once (sagaboard/kernel/doorbell.py, `late_answer`).

A consumer woken by a bell looks a few times (each look a few fetch waits), then parks with its
partitions paused. A fetch it sent during a look is still answered after the look ended; when the
broker is slow, that answer carries the record the bell was rung for. Before, the record waited
in aiokafka's buffer for the next safety look (SAGA_IDLE_POLL_MS, 2 s): the one-at-a-time
regression of `make bench` (README, "Efficiency"). Here a real Tansu is reached only through a
proxy that holds each of its answers back for DELAY seconds, so that every look misses, and the
safety look is a minute away: the record must still arrive within seconds, woken by the answer.
"""
import asyncio
import socket
import subprocess
import time

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sagaboard.kernel.broker import tansu_command
from sagaboard.kernel.doorbell import Parking, Ringer
from tests.system import free_port, wait_until

DELAY = 0.3  # seconds each answer of the broker is held back: longer than a wake's looks (about 0.12 s)
SAFETY_LOOK_MS = 60_000
FETCH_WAIT_MS = 5
TOPIC = "parking.test"


class SlowAnswers:
    """A TCP proxy to the broker that forwards requests at once and each answer DELAY s late (in
    order), like a broker busy with other work."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.server = None
        self.tasks: set[asyncio.Task] = set()

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._client, "127.0.0.1", self.port)

    async def stop(self) -> None:
        self.server.close()
        for task in self.tasks:
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)

    async def _client(self, client_r, client_w) -> None:
        up_r, up_w = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        queue: asyncio.Queue = asyncio.Queue()

        async def pipe(reader, writer):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            writer.close()

        async def read_answers():
            while data := await up_r.read(65536):
                queue.put_nowait((time.monotonic() + DELAY, data))
            queue.put_nowait((0, b""))

        async def send_answers():
            while True:
                due, data = await queue.get()
                if not data:
                    client_w.close()
                    return
                await asyncio.sleep(max(0.0, due - time.monotonic()))
                client_w.write(data)
                await client_w.drain()

        for coro in (pipe(client_r, up_w), read_answers(), send_answers()):
            task = asyncio.create_task(coro)
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)


def listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_a_parked_consumer_takes_an_answer_that_came_after_its_looks(tmp_path):
    broker_port = free_port()
    proxy = SlowAnswers(broker_port)
    command = tansu_command(broker_port)
    command[command.index("--advertised-listener-url") + 1] = f"tcp://127.0.0.1:{proxy.port}"  # every client goes through the proxy
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(broker_port), 10, 0.05, "the broker to listen")
        late, parked_before_ring, waited = asyncio.run(_ring_a_parked_consumer(proxy, tmp_path))
    finally:
        broker.terminate()
        broker.wait(10)
    assert parked_before_ring, "the consumer must be parked when the bell rings"
    assert waited < SAFETY_LOOK_MS / 1000 / 4, f"the record came after {waited:.1f} s: only the safety look found it"
    assert late >= 1, "the park must have ended by the late answer, not by the bell's looks"


async def _ring_a_parked_consumer(proxy: SlowAnswers, where) -> tuple[int, bool, float]:
    await proxy.start()
    bootstrap = f"127.0.0.1:{proxy.port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                fetch_max_wait_ms=FETCH_WAIT_MS)
    parking = Parking(where, "test", True, linger_ms=20, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=FETCH_WAIT_MS)
    stopping = asyncio.Event()
    try:
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        await producer.start()
        await consumer.start()
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        parking.open()
        assert await parking.fetch(consumer, stopping) == {}  # a first look at an empty topic...
        fetching = asyncio.create_task(parking.fetch(consumer, stopping))  # ...then it parks
        await asyncio.sleep(2 * DELAY)  # the first look's answers are in, empty
        parked_before_ring = parking.parked_since is not None and not fetching.done()
        await producer.send_and_wait(TOPIC, b"the record", partition=0)
        rang_at = time.monotonic()
        Ringer(where).ring()
        records = await asyncio.wait_for(fetching, SAFETY_LOOK_MS / 1000 * 2)
        for _ in range(10):  # the bell's looks miss (each answer is DELAY late), then it parks again
            if records:
                break
            records = await asyncio.wait_for(parking.fetch(consumer, stopping), SAFETY_LOOK_MS / 1000 * 2)
        waited = time.monotonic() - rang_at
        assert [r.value for r in records[tp]] == [b"the record"]
        return parking.late_answers, parked_before_ring, waited
    finally:
        stopping.set()
        parking.close()
        await consumer.stop()
        await producer.stop()
        await admin.close()
        await proxy.stop()


def test_a_consumer_of_a_long_log_widens_its_fetch_wait_and_gets_its_records(tmp_path):
    """Tansu 0.6.0 reads a fetch by going through the partition's batches (about 0.6 ms per
    thousand here) and answers a fetch whose wait ran out first with nothing but the high
    watermark. With 1 ms waits and 15,000 single-record batches, every answer was empty: the
    consumer must widen its wait (Parking.adapt_wait) and read the records the bell was rung for."""
    broker_port = free_port()
    broker = subprocess.Popen(tansu_command(broker_port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(broker_port), 10, 0.05, "the broker to listen")
        got, wait = asyncio.run(_read_the_end_of_a_long_log(f"127.0.0.1:{broker_port}", tmp_path))
    finally:
        broker.terminate()
        broker.wait(10)
    assert got == [b"the last"]
    assert wait > 1, "the fetch wait was widened"


LONG_LOG_BATCHES = 15_000


async def _read_the_end_of_a_long_log(bootstrap: str, where) -> tuple[list[bytes], int]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap) for _ in range(4)]
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=1)
    parking = Parking(where, "test", True, linger_ms=20, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=1)
    stopping = asyncio.Event()
    try:
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        for producer in producers:
            await producer.start()

        async def one_batch_at_a_time(producer, count):
            for _ in range(count):
                await producer.send_and_wait(TOPIC, b"x" * 200, partition=0)

        await asyncio.gather(*(one_batch_at_a_time(p, LONG_LOG_BATCHES // len(producers)) for p in producers))
        tp = TopicPartition(TOPIC, 0)
        consumer.assign([tp])
        await consumer.start()
        last = await producers[0].send_and_wait(TOPIC, b"the last", partition=0)
        consumer.seek(tp, last.offset)
        parking.open()
        Ringer(where).ring()
        deadline = time.monotonic() + 30
        records = {}
        while not records and time.monotonic() < deadline:
            records = await asyncio.wait_for(parking.fetch(consumer, stopping), 30)
        return [r.value for r in records.get(tp, [])], consumer._fetcher._fetch_max_wait_ms
    finally:
        stopping.set()
        parking.close()
        await consumer.stop()
        for producer in producers:
            await producer.stop()
        await admin.close()
