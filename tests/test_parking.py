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
import contextlib
import subprocess
import time

from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from sagaboard.kernel import broker as kafka
from sagaboard.kernel.broker import tansu_command
from sagaboard.kernel.doorbell import (
    EARLY_LOOK_SECONDS,
    FETCH_BURST,
    OFF_PATH_EARLY_LOOK_SECONDS,
    Parking,
    Ringer,
    behind,
)
from tests.system import free_port, listening, wait_until

DELAY = 0.3  # seconds each answer of the broker is held back: longer than a wake's looks (about 0.12 s)
SAFETY_LOOK_MS = 60_000
WAKE_LIMIT_SECONDS = 15  # how long a test waits for a record a late answer should wake the consumer for
FETCH_WAIT_MS = 5
TOPIC = "parking.test"


class SlowAnswers:
    """A TCP proxy to the broker that forwards requests at once and each answer DELAY s late (in
    order), like a broker busy with other work."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.port = free_port()
        self.delay = DELAY  # seconds; set to 0 to pass answers on at once
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
                queue.put_nowait((time.monotonic() + self.delay, data))
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


def service_consumer(bootstrap: str, fetch_wait_ms: int):
    """A consumer configured as the services' (sagaboard/kernel/broker.py), on `bootstrap`."""
    return kafka.consumer(None, subscribe=False, bootstrap_servers=bootstrap, fetch_max_wait_ms=fetch_wait_ms)


@contextlib.asynccontextmanager
async def one_partition(bootstrap: str, topic: str):
    """A new one-partition `topic` on `bootstrap`: yields (producer, consumer, tp), the consumer a
    service's, assigned to the partition from offset 0 (not fetched yet); stops them after."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    consumer = service_consumer(bootstrap, FETCH_WAIT_MS)
    try:
        await admin.start()
        await admin.create_topics([NewTopic(topic, 1, 1)])
        await producer.start()
        await consumer.start()
        tp = TopicPartition(topic, 0)
        consumer.assign([tp])
        consumer.seek(tp, 0)
        yield producer, consumer, tp
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()


@contextlib.contextmanager
def opened(parking: Parking):
    """Open `parking`'s bell and yield the `stopping` event its fetches take; after, set it and
    close the bell."""
    stopping = asyncio.Event()
    parking.open()
    try:
        yield stopping
    finally:
        stopping.set()
        parking.close()


def ring(where) -> None:
    """Ring every bell in `where` once, as a publisher does, and close the ringer's socket."""
    ringer = Ringer(where)
    try:
        ringer.ring()
    finally:
        ringer.close()


@contextlib.contextmanager
def tansu_behind_slow_answers():
    """A real Tansu that every client reaches through a SlowAnswers proxy (its advertised listener
    is the proxy's port): yields the proxy, not started yet; stops the broker after."""
    broker_port = free_port()
    proxy = SlowAnswers(broker_port)
    command = tansu_command(broker_port)
    command[command.index("--advertised-listener-url") + 1] = f"tcp://127.0.0.1:{proxy.port}"
    broker = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_until(lambda: listening(broker_port), 10, 0.05, "the broker to listen")
        yield proxy
    finally:
        broker.terminate()
        broker.wait(10)


def test_a_parked_consumer_takes_an_answer_that_came_after_its_looks(tmp_path):
    with tansu_behind_slow_answers() as proxy:
        late, parked_before_ring, waited = asyncio.run(_ring_a_parked_consumer(proxy, tmp_path))
    assert parked_before_ring, "the consumer must be parked when the bell rings"
    assert waited < SAFETY_LOOK_MS / 1000 / 4, f"the record came after {waited:.1f} s: only the safety look found it"
    assert late >= 1, "the park must have ended by the late answer, not by the bell's looks"


async def _ring_a_parked_consumer(proxy: SlowAnswers, where) -> tuple[int, bool, float]:
    await proxy.start()
    parking = Parking(where, "test", True, linger_ms=20, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=FETCH_WAIT_MS)
    try:
        with opened(parking) as stopping:
            async with one_partition(f"127.0.0.1:{proxy.port}", TOPIC) as (producer, consumer, tp):
                assert await parking.fetch(consumer, stopping) == {}  # a first look at an empty topic...
                fetching = asyncio.create_task(parking.fetch(consumer, stopping))  # ...then it parks
                await asyncio.sleep(2 * DELAY)  # the first look's answers are in, empty
                parked_before_ring = parking.parked_since is not None and not fetching.done()
                await producer.send_and_wait(TOPIC, b"the record", partition=0)
                rang_at = time.monotonic()
                ring(where)
                records = await asyncio.wait_for(fetching, SAFETY_LOOK_MS / 1000 * 2)
                for _ in range(10):  # the bell's looks miss (each answer is DELAY late), then it parks again
                    if records:
                        break
                    records = await asyncio.wait_for(parking.fetch(consumer, stopping), SAFETY_LOOK_MS / 1000 * 2)
                waited = time.monotonic() - rang_at
                assert [r.value for r in records[tp]] == [b"the record"]
                return parking.late_answers, parked_before_ring, waited
    finally:
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


@contextlib.asynccontextmanager
async def a_long_log(bootstrap: str):
    """TOPIC, one partition, with LONG_LOG_BATCHES records of 200 bytes, one batch each (four
    producers, each sending and waiting one record at a time): yields (producer, consumer, tp),
    the consumer a service's with a 1 ms fetch wait, assigned to the partition and started, its
    position not set. Stops them after."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producers = [AIOKafkaProducer(bootstrap_servers=bootstrap) for _ in range(4)]
    consumer = service_consumer(bootstrap, 1)
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
        yield producers[0], consumer, tp
    finally:
        await consumer.stop()
        for producer in producers:
            await producer.stop()
        await admin.close()


async def _read_the_end_of_a_long_log(bootstrap: str, where) -> tuple[list[bytes], int]:
    parking = Parking(where, "test", True, linger_ms=20, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=1)
    with opened(parking) as stopping:
        async with a_long_log(bootstrap) as (producer, consumer, tp):
            last = await producer.send_and_wait(TOPIC, b"the last", partition=0)
            consumer.seek(tp, last.offset)
            ring(where)
            deadline = time.monotonic() + 30
            records = {}
            while not records and time.monotonic() < deadline:
                records = await asyncio.wait_for(parking.fetch(consumer, stopping), 30)
            return [r.value for r in records.get(tp, [])], consumer._fetcher._fetch_max_wait_ms


def test_a_parked_consumer_wakes_for_a_late_empty_answer_that_says_records_wait(tmp_path):
    """The bell's looks all end before the broker answers (each answer DELAY s late), and the late
    answer brings no record, only a high watermark beyond the consumer's position: the broker's
    read of a long log took longer than the fetch's wait (Parking.adapt_wait). Before, nothing
    woke the parked consumer, and the record waited for the safety look (a minute here, 2 s in a
    system: `make bench`'s one-at-a-time p99 after a long log). It must wake, widen its wait and
    read the record within seconds."""
    with tansu_behind_slow_answers() as proxy:
        got, waited, late = asyncio.run(_ring_for_the_end_of_a_long_log_behind_slow_answers(proxy, tmp_path))
    assert got == [b"the last"], f"no record {waited:.1f} s after the ring (the safety look is {SAFETY_LOOK_MS / 1000:.0f} s away)"
    assert late >= 1, "a late answer ended a park"


async def _ring_for_the_end_of_a_long_log_behind_slow_answers(proxy: SlowAnswers, where) -> tuple[list[bytes], float, int]:
    await proxy.start()
    proxy.delay = 0  # while the log is written
    parking = Parking(where, "test", True, linger_ms=20, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=1)
    try:
        with opened(parking) as stopping:
            async with a_long_log(f"127.0.0.1:{proxy.port}") as (producer, consumer, tp):
                consumer.seek(tp, LONG_LOG_BATCHES)  # the log's end: nothing to read yet
                for _ in range(10):  # look until parked: the first looks are not quiet
                    if not await asyncio.wait_for(parking.fetch(consumer, stopping), 5) and not parking.hot:
                        break
                proxy.delay = DELAY
                fetching = asyncio.create_task(parking.fetch(consumer, stopping))
                await asyncio.sleep(2 * DELAY)
                assert parking.parked_since is not None and not fetching.done(), "parked before the ring"
                await producer.send_and_wait(TOPIC, b"the last", partition=0)
                rang_at = time.monotonic()
                ring(where)

                async def until_records():
                    records = await fetching
                    while not records:  # each look misses (every answer is DELAY late); late answers wake the parks
                        records = await parking.fetch(consumer, stopping)
                    return records

                try:
                    records = await asyncio.wait_for(until_records(), WAKE_LIMIT_SECONDS)
                except TimeoutError:
                    records = {}
                return [r.value for r in records.get(tp, [])], time.monotonic() - rang_at, parking.late_answers
    finally:
        await proxy.stop()


def test_a_parked_consumers_fetch_routine_sleeps_and_a_resume_still_fetches_at_once(broker):
    """aiokafka's background fetch routine woke every 200 ms (its consumer_timeout_ms) even with
    every partition paused: five wake-ups a second per parked consumer for nothing. The services'
    consumers let it sleep up to FETCHER_WAKE_MS, since aiokafka wakes it for all it must do: here,
    a resume after a park must still fetch the record at once, far inside that sleep."""
    wakes, records = asyncio.run(_park_then_resume(broker))
    assert wakes <= 2, f"the fetch routine of a parked consumer woke {wakes} times in {PARKED_SECONDS} s"
    assert records == [b"after the park"], "a resume must wake the fetch routine (records within 1 s)"


PARKED_SECONDS = 1.5


async def _park_then_resume(bootstrap: str) -> tuple[int, list[bytes]]:
    topic = f"parking.sleep.{free_port()}"
    assert kafka.FETCHER_WAKE_MS >= 4000, "the sleep must be far longer than the 1 s this test waits for records"
    async with one_partition(bootstrap, topic) as (producer, consumer, tp):
        assert await consumer.getmany(timeout_ms=200) == {}  # the position is known, nothing to read
        consumer.pause(tp)  # parked (Parking.fetch pauses every partition after each look)
        await asyncio.sleep(0.3)  # a wait already under way ends
        fetcher = consumer._fetcher  # aiokafka 0.14.0 (pinned): the routine asks this each time it wakes
        plan, wakes = fetcher._get_actions_per_node, []

        def counted(assignment):
            wakes.append(time.monotonic())
            return plan(assignment)

        fetcher._get_actions_per_node = counted
        await asyncio.sleep(PARKED_SECONDS)
        parked_wakes = len(wakes)
        await producer.send_and_wait(topic, b"after the park", partition=0)
        consumer.resume(tp)
        got = await consumer.getmany(tp, timeout_ms=1000)
        return parked_wakes, [r.value for r in got.get(tp, [])]


def test_a_safety_look_takes_one_fetch_and_still_finds_a_record_no_bell_announced(broker, tmp_path):
    """A look no bell asked for (the safety look, every SAGA_IDLE_POLL_MS) waits for one fetch's
    answer, not the several a rung look takes: on an idle system those looks were 2.2 of its
    5.3 % of a core, most of it the embedded broker answering them. A record whose bell was lost
    must still be found by such a look, on a real Tansu."""
    fetches_per_look, quiet_looks, records = asyncio.run(_quiet_looks(broker, tmp_path))
    assert quiet_looks >= 3, f"only {quiet_looks} safety looks in {QUIET_SECONDS} s at a {QUIET_POLL_MS} ms interval"
    assert fetches_per_look < 3, f"a safety look sent {fetches_per_look:.1f} fetches (a rung look sends about 4)"
    assert records == [b"no bell rang"]


QUIET_POLL_MS = 200
QUIET_SECONDS = 1.2


async def _quiet_looks(bootstrap: str, where) -> tuple[float, int, list[bytes]]:
    topic = f"parking.quiet.{free_port()}"
    parking = Parking(where, "quiet", True, linger_ms=20, poll_ms=QUIET_POLL_MS, fetch_wait_ms=FETCH_WAIT_MS)
    with opened(parking) as stopping:
        async with one_partition(bootstrap, topic) as (producer, consumer, tp):
            while await parking.fetch(consumer, stopping) == {} and parking.hot:
                pass  # the first looks (positions, the topic's emptiness), until it parks
            fetcher = consumer._fetcher  # aiokafka 0.14.0 (pinned): each fetch request goes through this
            send, sent = fetcher._proc_fetch_request, []

            def counted(*args):
                sent.append(1)
                return send(*args)

            fetcher._proc_fetch_request = counted
            looks_before = parking.quiet_looks
            deadline = time.monotonic() + QUIET_SECONDS
            while time.monotonic() < deadline:
                assert await asyncio.wait_for(parking.fetch(consumer, stopping), 5) == {}
            looks = parking.quiet_looks - looks_before
            await producer.send_and_wait(topic, b"no bell rang", partition=0)  # and no Ringer: a lost bell
            return len(sent) / max(looks, 1), looks, await _fetch_one(parking, consumer, stopping, tp)


async def _fetch_one(parking: Parking, consumer, stopping, tp) -> list[bytes]:
    """The values of the next fetch that brings records (a few looks at most)."""
    for _ in range(10):
        got = await asyncio.wait_for(parking.fetch(consumer, stopping), 10)
        if got:
            return [r.value for r in got[tp]]
    return []


def test_a_consumer_whose_last_answer_says_records_wait_does_not_park(broker, tmp_path):
    """A consumer `behind` (its last answer's high watermark is past its position, nothing
    buffered: the answer a slow broker gives when a fetch's wait ran out) looks again at once
    instead of parking: no ring will come for records already published, and a park would leave
    them for the safety look, a minute away here. Made real by reading three records and seeking
    back to offset 0 after a look that found nothing."""
    parks, records = asyncio.run(_behind_after_a_quiet_look(broker, tmp_path))
    assert parks == 0, "it parked although its last answer said records wait"
    assert records == [b"0", b"1", b"2"]


async def _behind_after_a_quiet_look(bootstrap: str, where) -> tuple[int, list[bytes]]:
    topic = f"parking.behind.{free_port()}"
    parking = Parking(where, "behind", True, linger_ms=20, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=FETCH_WAIT_MS)
    with opened(parking) as stopping:
        async with one_partition(bootstrap, topic) as (producer, consumer, tp):
            for n in range(3):
                await producer.send_and_wait(topic, str(n).encode(), partition=0)
            read = []
            for _ in range(10):  # a fetch may bring one batch: read until all three came
                read += await _fetch_one(parking, consumer, stopping, tp)
                if len(read) >= 3:
                    break
            assert read == [b"0", b"1", b"2"]
            assert await asyncio.wait_for(parking.fetch(consumer, stopping), 10) == {} and not parking.hot
            consumer.seek(tp, 0)
            assert await behind(consumer)
            parks, again = parking.parked, []
            deadline = time.monotonic() + WAKE_LIMIT_SECONDS
            while len(again) < 3 and time.monotonic() < deadline:  # a look may end before a slow answer
                try:
                    got = await asyncio.wait_for(parking.fetch(consumer, stopping), WAKE_LIMIT_SECONDS)
                except TimeoutError:
                    break  # parked until the safety look
                again += [r.value for r in got.get(tp, [])]
            return parking.parked - parks, again


def test_a_ring_ends_the_pause_after_records_while_fetches_are_sparse(broker, tmp_path):
    """Every consumer reads every record, so each publish left every consumer in the pause
    (SAGA_FETCH_LINGER_MS) that follows a fetch with records, and the next hop's record, rung a few
    ms later, waited for that pause to end: about 5 ms of each hop of a lone order (a trace of 27
    orders one at a time). Now, while the consumer has looked less than once per linger lately
    (doorbell.FETCH_BURST), a ring ends the pause: the record comes at once, not after the linger."""
    took = asyncio.run(_ring_during_the_pause(broker, tmp_path))
    assert took < LONG_LINGER_MS / 1000 / 2, f"the record came {took:.2f} s after its ring: it waited out the pause"


LONG_LINGER_MS = 2000  # far longer than a look: a pause of this length is unmistakable


def test_off_the_critical_path_a_lone_ring_ends_the_pause_but_under_load_looks_stay_few(broker, tmp_path):
    """A consumer off the saga's critical path (the deadline's, the monitor's: doorbell.parking with
    critical_path=False) lingers long (SAGA_OFF_PATH_FETCH_LINGER_MS) and gets an early look back
    only every OFF_PATH_EARLY_LOOK_SECONDS. A lone ring during the pause after records still ends
    it at once (a lone order's "disarmed" comes when it happened, not half a second later: the
    timeline test saw that). Rung every 10 ms for RUNG_SECONDS, a record each time, it spends its
    burst, then waits out each linger and takes the credits that came back meanwhile: at most
    FETCH_BURST + (RUNG_SECONDS / linger + 1) × (1 + linger / OFF_PATH_EARLY_LOOK_SECONDS) looks;
    with the hops' EARLY_LOOK_SECONDS (a full burst back after every linger) about 40 % more
    (README, "Off the critical path")."""
    lone, looks = asyncio.run(_off_the_critical_path(broker, tmp_path))
    assert lone < OFF_PATH_LINGER_MS / 1000 / 2, f"a lone ring waited {lone:.2f} s: it waited out the pause"
    linger = OFF_PATH_LINGER_MS / 1000
    most = FETCH_BURST + (RUNG_SECONDS / linger + 1) * (1 + linger / OFF_PATH_EARLY_LOOK_SECONDS)
    assert 2 <= looks <= most, f"rung for {RUNG_SECONDS} s it looked {looks} times (at most {most:.0f})"


OFF_PATH_LINGER_MS = 500  # SAGA_OFF_PATH_FETCH_LINGER_MS's default
RUNG_SECONDS = 3.0


async def _off_the_critical_path(bootstrap: str, where) -> tuple[float, int]:
    topic = f"parking.offpath.{free_port()}"
    parking = Parking(where, "offpath", True, linger_ms=OFF_PATH_LINGER_MS, poll_ms=SAFETY_LOOK_MS,
                      fetch_wait_ms=FETCH_WAIT_MS, early_look_seconds=OFF_PATH_EARLY_LOOK_SECONDS)
    with opened(parking) as stopping:
        async with one_partition(bootstrap, topic) as (producer, consumer, tp):
            lone = await _lone_ring_in_the_pause(parking, stopping, producer, consumer, tp, where)
            await asyncio.sleep(FETCH_BURST * OFF_PATH_EARLY_LOOK_SECONDS)  # the bucket fills again
            done = asyncio.Event()

            async def load():  # a record and a ring every 10 ms, as under load
                while not done.is_set():
                    await producer.send(topic, b"load", partition=0)
                    ring(where)
                    await asyncio.sleep(0.01)

            loading = asyncio.create_task(load())
            looks, records = 0, 0
            end = time.monotonic() + RUNG_SECONDS
            try:
                while time.monotonic() < end:
                    got = await asyncio.wait_for(parking.fetch(consumer, stopping), 10)
                    looks += 1
                    records += len(got.get(tp, []))
            finally:
                done.set()
                await loading
            assert records > looks, f"{records} records in {looks} looks: the load did not come"
            return lone, looks


async def _ring_during_the_pause(bootstrap: str, where) -> float:
    topic = f"parking.sparse.{free_port()}"
    parking = Parking(where, "sparse", True, linger_ms=LONG_LINGER_MS, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=FETCH_WAIT_MS)
    with opened(parking) as stopping:
        async with one_partition(bootstrap, topic) as (producer, consumer, tp):
            return await _lone_ring_in_the_pause(parking, stopping, producer, consumer, tp, where)


async def _lone_ring_in_the_pause(parking: Parking, stopping, producer, consumer, tp, where) -> float:
    """Seconds from a ring to its record when it comes during the pause after a fetch with records
    (the record "first" fetched, then "second" published and rung 0.1 s into the pause)."""
    await producer.send_and_wait(tp.topic, b"first", partition=0)
    assert await _fetch_one(parking, consumer, stopping, tp) == [b"first"]
    fetching = asyncio.create_task(parking.fetch(consumer, stopping))  # the pause after records
    await asyncio.sleep(0.1)
    assert not fetching.done(), "right after a fetch with records it pauses"
    await producer.send_and_wait(tp.topic, b"second", partition=0)
    rang_at = time.monotonic()
    ring(where)
    got = await asyncio.wait_for(fetching, 10)
    took = time.monotonic() - rang_at
    assert [r.value for r in got.get(tp, [])] == [b"second"]
    return took


def test_under_load_rings_do_not_end_the_pause_so_fetches_stay_a_linger_apart(broker, tmp_path):
    """The other side: a consumer rung again and again (load) spends its burst of looks sooner than
    a linger (doorbell.FETCH_BURST), then waits out each pause, so that its fetches are at most two
    per SAGA_FETCH_LINGER_MS on average and each carries many records (README, "Efficiency")."""
    gaps = asyncio.run(_rung_under_load(broker, tmp_path))
    assert all(gap < LINGER_UNDER_LOAD_MS / 1000 / 2 for gap in gaps[:FETCH_BURST]), f"the burst's looks: {gaps}"
    assert gaps[-1] >= 0.9 * LINGER_UNDER_LOAD_MS / 1000, f"after the burst a ring still ended the pause: {gaps}"


LINGER_UNDER_LOAD_MS = 600


async def _rung_under_load(bootstrap: str, where) -> list[float]:
    topic = f"parking.load.{free_port()}"
    parking = Parking(where, "load", True, linger_ms=LINGER_UNDER_LOAD_MS, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=FETCH_WAIT_MS)
    gaps = []
    with opened(parking) as stopping:
        async with one_partition(bootstrap, topic) as (producer, consumer, tp):
            await producer.send_and_wait(topic, b"0", partition=0)
            assert await _fetch_one(parking, consumer, stopping, tp) == [b"0"]
            for n in range(1, FETCH_BURST + 2):  # the first look was a linger after the last: free
                before = parking.fetched_at
                await producer.send_and_wait(topic, str(n).encode(), partition=0)
                ring(where)
                assert await _fetch_one(parking, consumer, stopping, tp) == [str(n).encode()]
                gaps.append(parking.fetched_at - before)
            return gaps


def test_a_credit_for_an_early_look_comes_back_every_early_look_interval_not_every_linger(tmp_path):
    """The token bucket of early looks refills one credit per doorbell.EARLY_LOOK_SECONDS, or per
    linger when the linger is shorter: with a 100 ms linger a lone order's rings, 60-90 ms apart,
    would otherwise find the bucket empty after FETCH_BURST of them (README, "Typed rings and a
    longer linger"). The bucket never holds more than FETCH_BURST."""
    long = Parking(tmp_path, "long", False, linger_ms=LINGER_UNDER_LOAD_MS, poll_ms=SAFETY_LOOK_MS,
                   fetch_wait_ms=FETCH_WAIT_MS)
    short = Parking(tmp_path, "short", False, linger_ms=10, poll_ms=SAFETY_LOOK_MS, fetch_wait_ms=FETCH_WAIT_MS)
    assert (long.spacing, short.spacing) == (EARLY_LOOK_SECONDS, 0.01)
    for parking in (long, short):
        parking.credit, parking.credit_at = 0.0, time.monotonic() - 2 * parking.spacing
        assert 2 <= parking.refill() < 2.5, f"{parking.name}: two intervals gave {parking.credit} credits"
        parking.credit_at = time.monotonic() - 100 * parking.spacing
        assert parking.refill() == FETCH_BURST
