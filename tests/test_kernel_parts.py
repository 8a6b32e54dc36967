"""The runtime's small parts, each on its own: lanes (per-order order), offsets (what may be
committed), doorbells (waking a parked consumer). No broker, no database: their rules only."""
import asyncio
import os
import socket
import tempfile
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import pytest

from sagaboard.kernel.doorbell import (
    EVERY_TYPE,
    MASK_BYTES,
    Doorbell,
    Ringer,
    directory,
    type_mask,
    type_ring,
    wanted_by,
)
from sagaboard.kernel.lanes import Lanes
from sagaboard.kernel.offsets import OffsetTracker


@dataclass(eq=False)
class Item:
    key: str
    n: int
    waits: bool = False


def lanes() -> Lanes:
    return Lanes(key=lambda i: i.key, must_wait=lambda i: i.waits)


def test_a_batch_takes_each_lanes_front_items_in_order_and_stops_at_one_that_must_wait():
    ls = lanes()
    for item in [Item("a", 1), Item("b", 1), Item("a", 2), Item("a", 3, waits=True), Item("a", 4), Item("c", 1)]:
        ls.add(item)
    batch = ls.take(10)
    assert [(i.key, i.n) for i in batch] == [("a", 1), ("a", 2), ("b", 1), ("c", 1)]
    assert len(ls) == 2
    assert [(i.key, i.n) for i in ls.waiting()] == [("a", 3)]
    ls.hold("a")
    assert ls.waiting() == [] and ls.take(10) == []
    waiting = ls.lanes["a"][0]
    waiting.waits = False  # its before step ran
    ls.release("a")
    assert [(i.key, i.n) for i in ls.take(10)] == [("a", 3), ("a", 4)]
    assert len(ls) == 0 and not ls.lanes


def test_a_batch_respects_its_limit_and_items_put_back_come_first_in_their_order():
    ls = lanes()
    for n in range(5):
        ls.add(Item("a", n))
    ls.add(Item("b", 0))
    first = ls.take(3)
    assert [i.n for i in first] == [0, 1, 2]
    ls.put_back(first[1:])  # 1 failed, 2 was behind it
    assert [(i.key, i.n) for i in ls.take(10)] == [("a", 1), ("a", 2), ("a", 3), ("a", 4), ("b", 0)]


def test_dropping_a_partition_forgets_only_its_items():
    ls = lanes()
    for item in [Item("a", 1), Item("b", 1), Item("a", 2)]:
        ls.add(item)
    ls.hold("b")
    assert ls.drop_partition(lambda i: i.key == "b") == 1
    assert "b" not in ls.held and len(ls) == 2


def test_the_committable_offset_is_the_lowest_unfinished_one():
    offsets = OffsetTracker()
    for offset in (10, 11, 12, 13):
        assert offsets.received("p0", offset)
    assert offsets.to_commit({"p0"}) == {"p0": 10}
    offsets.finished("p0", 11)
    offsets.finished("p0", 13)
    assert offsets.to_commit({"p0"}) == {"p0": 10}  # 10 is not finished: a crash rereads from it
    offsets.finished("p0", 10)
    assert offsets.to_commit({"p0"}) == {"p0": 12}
    offsets.committed({"p0": 12})
    assert offsets.to_commit({"p0"}) == {}
    offsets.finished("p0", 12)
    assert offsets.to_commit({"p0"}) == {"p0": 14}
    assert offsets.to_commit(set()) == {}  # a partition not assigned any more is not committed


def test_offsets_that_go_back_mean_a_new_log():
    offsets = OffsetTracker()
    offsets.received("p0", 40)
    offsets.finished("p0", 40)
    offsets.committed({"p0": 41})
    assert not offsets.received("p0", 0)  # the broker restarted empty
    offsets.finished("p0", 0)
    assert offsets.to_commit({"p0"}) == {"p0": 1}


def test_keeping_a_partition_restarts_it_from_its_committed_offset():
    offsets = OffsetTracker()
    for offset in (5, 6, 7):
        offsets.received("p0", offset)
    offsets.received("p1", 3)
    offsets.finished("p0", 5)
    offsets.committed({"p0": 6})
    offsets.keep_only({"p0"})
    assert set(offsets.partitions) == {"p0"} and offsets.unfinished() == 0
    assert offsets.received("p0", 6)  # reread from the committed offset: not a new log


def test_a_ring_wakes_a_parked_bell_and_a_silent_bell_times_out(tmp_path):
    where = tmp_path / "doorbells"
    bell = Doorbell(where, "exchange")
    bell.open()
    ringer = Ringer(where)
    try:
        async def scenario():
            waiting = asyncio.create_task(bell.wait(5))
            await asyncio.sleep(0.05)
            assert ringer.ring() == 1
            assert await asyncio.wait_for(waiting, 2) is True
            assert await bell.wait(0.05) is False  # nothing rang since
            ringer.ring()
            ringer.ring()
            return bell.drain()

        assert asyncio.run(scenario()) == 2
    finally:
        bell.close()
        ringer.close()
    assert not bell.path.exists()


def test_a_bell_wakes_only_for_the_event_types_its_consumer_handles(tmp_path):
    """A ring names the event types published (doorbell.type_ring): the point service's consumer
    sleeps through rings for OrderCreated and OrderPlaced, which it skips, and wakes for
    ExchangeSucceeded; a ring that names no type (EVERY_TYPE), or that another version wrote,
    wakes every consumer, and a consumer that wants everything (the monitor) takes every ring.
    The masks are the services' own (`Service.wants`, as kernel/consumer.py passes them)."""
    from services.monitor.saga import service as monitor_service
    from services.point.saga import service as point_service

    assert point_service.wants() == {"ExchangeSucceeded", "ExchangeCompensated", "OrderRejected", "PointsAdjusted"}
    assert monitor_service.wants() is None
    where = tmp_path / "doorbells"
    point = Doorbell(where, "point", type_mask(point_service.wants()))
    monitor = Doorbell(where, "monitor", None)
    point.open()
    monitor.open()
    ringer = Ringer(where)
    try:
        async def scenario():
            waiting = asyncio.create_task(point.wait(0.5))
            await asyncio.sleep(0.05)
            # rings for types the point service skips are not even sent to its bell (Ringer.ring)
            assert ringer.ring({"OrderCreated"}) == 1 and ringer.ring(["OrderPlaced", "OrderPlaced"]) == 1
            assert await asyncio.wait_for(waiting, 2) is False, "woken by a ring for types it skips"
            assert monitor.drain() == 2
            # a ringer of a version that rings every bell: the bell itself drops what it skips
            waiting = asyncio.create_task(point.wait(0.3))
            await asyncio.sleep(0.05)
            ringer.sock.sendto(type_ring({"OrderCreated"}), str(point.path))
            assert await asyncio.wait_for(waiting, 2) is False, "woken by a ring for a type it skips"
            waiting = asyncio.create_task(point.wait(5))
            await asyncio.sleep(0.05)
            ringer.ring({"OrderCreated"})
            await asyncio.sleep(0.05)
            assert not waiting.done(), "a ring for another type ended the wait"
            ringer.ring({"PointUsed", "ExchangeSucceeded"})
            assert await asyncio.wait_for(waiting, 2) is True
            ringer.ring()  # names no type
            ringer.ring({"not an event type"})  # a name this version does not know: every consumer
            ringer.sock.sendto(b"\x00\x00\x00", str(point.path))  # another version's ring
            return point.drain(), monitor.drain()

        assert asyncio.run(scenario()) == (3, 4)
    finally:
        point.close()
        monitor.close()
        ringer.close()
    assert type_ring({"OrderCreated"}) != EVERY_TYPE and len(type_ring({"OrderCreated"})) == MASK_BYTES != len(EVERY_TYPE)
    with pytest.raises(ValueError):
        type_mask({"OrderShipped"})


def test_rings_for_types_a_busy_consumer_skips_never_crowd_out_the_one_it_wants(tmp_path):
    """A bell holds at most net.unix.max_dgram_qlen rings (10 by default) while its consumer is
    busy, and a ringer skips a full one. The order service's consumer, busy, is not rung for the
    many OrderCreated that the web publishes; the one PointUsed rung after them is still in its
    bell when it parks, so it wakes at once. Before, every ring went to every bell: the
    OrderCreated rings filled it, the PointUsed ring was dropped, and the record waited for the
    safety look (README, "Lost rings and late empty answers")."""
    from services.order.saga import service as order_service

    where = tmp_path / "doorbells"
    order = Doorbell(where, "order", type_mask(order_service.wants()))
    order.open()
    ringer = Ringer(where)
    try:
        queue_length = int(Path("/proc/sys/net/unix/max_dgram_qlen").read_text())
        for _ in range(queue_length + 5):
            ringer.ring({"OrderCreated"})
        assert ringer.ring({"PointUsed"}) == 1

        async def parks():
            return await order.wait(0.2)

        assert asyncio.run(parks()) is True, "the PointUsed ring was lost"
    finally:
        order.close()
        ringer.close()
    assert wanted_by(order.path.name) == type_mask(order_service.wants())
    assert wanted_by(f"monitor-{os.getpid()}.bell") is None
    assert wanted_by("point-12.wants-zz.bell") is None  # a mask this version cannot read: every ring


def test_a_ringer_removes_the_bell_of_a_process_that_is_gone(tmp_path):
    where = tmp_path / "doorbells"
    where.mkdir()
    dead = where / "point-999999.bell"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(dead))
    sock.close()  # the file stays, nobody listens
    ringer = Ringer(where)
    try:
        assert ringer.ring() == 0
    finally:
        ringer.close()
    assert not dead.exists()


def test_the_bells_of_two_instances_never_meet_and_a_long_data_dir_gets_a_short_one(tmp_path):
    assert directory(tmp_path / "a") != directory(tmp_path / "b")
    deep = tmp_path / ("x" * 120)
    where = directory(deep)
    assert where == directory(deep) and len(str(where / f"monitor-{os.getpid()}.bell")) < 100


def test_a_part_of_the_runtime_that_dies_stops_the_whole_runtime():
    """Runtime.watch: a task that dies of an exception (the batch loop on a record it could not
    dead-letter, say) stops the runtime and is kept as its failure (runservice then exits 70), so
    supervisord starts the service again; a task that ends normally or is cancelled does not."""
    from sagaboard.kernel.consumer import Runtime
    from sagaboard.kernel.service import Service

    async def scenario():
        runtime = Runtime(Service("exchange"))

        async def fine():
            return None

        async def forever():
            await asyncio.sleep(3600)

        async def bug():
            raise AttributeError("'NoneType' object has no attribute 'decode'")

        runtime.watch(asyncio.create_task(fine()))
        cancelled = runtime.watch(asyncio.create_task(forever()))
        await asyncio.sleep(0)
        cancelled.cancel()
        await asyncio.sleep(0.01)
        assert runtime.failure is None and not runtime.stopping.is_set()
        runtime.watch(asyncio.create_task(bug(), name="batches"))
        await asyncio.sleep(0.01)
        assert isinstance(runtime.failure, AttributeError) and runtime.stopping.is_set()
        runtime.db_thread.shutdown()
        runtime.io_thread.shutdown()

    from sagaboard.kernel import faults

    try:
        asyncio.run(scenario())
    finally:
        faults.shutting_down.clear()  # stop() tells this process's fault points it is shutting down


class ConsumerWithAnAnswerAhead:
    """The part of aiokafka's consumer that Parking uses, answering every fetch with nothing while
    its last answer's high watermark is `high` (what Tansu 0.6.0 does when reading the partition
    takes longer than the fetch's wait)."""

    def __init__(self, position: int, high: int):
        self.tp = ("saga", 0)
        self.at, self.high = position, high
        self._fetcher = SimpleNamespace(_fetch_max_wait_ms=5)  # as aiokafka 0.14.0 keeps it
        self.fetches = 0
        self.readable = False

    def assignment(self):
        return {self.tp}

    def highwater(self, tp):
        return self.high

    async def position(self, tp):
        return self.at

    def resume(self, *tps):
        pass

    def pause(self, *tps):
        pass

    async def getmany(self, timeout_ms: int, max_records: int):
        self.fetches += 1
        await asyncio.sleep(0.001)
        if self.at < self.high and self.readable:  # the broker read in time: the records come
            records = [SimpleNamespace(offset=offset) for offset in range(self.at, self.high)]
            self.at = self.high
            return {self.tp: records}
        return {}


def test_a_consumer_behind_the_high_watermark_widens_its_wait_narrows_it_after_records_and_parks_once_caught_up(tmp_path):
    from sagaboard.kernel.doorbell import MAX_FETCH_WAIT_MS, Parking

    parking = Parking(tmp_path, "stub", True, linger_ms=1, poll_ms=60_000, fetch_wait_ms=5)
    consumer = ConsumerWithAnAnswerAhead(position=5, high=9)

    async def scenario():
        stopping = asyncio.Event()
        parking.open()
        waits = []
        for _ in range(10):  # no bell, the safety look a minute away: only "behind" makes these looks
            assert await asyncio.wait_for(parking.fetch(consumer, stopping), 5) == {}
            waits.append(consumer._fetcher._fetch_max_wait_ms)
        consumer.readable = True  # the wait is long enough now: records, and a narrower wait
        assert [r.offset for r in (await asyncio.wait_for(parking.fetch(consumer, stopping), 5))[consumer.tp]] == [5, 6, 7, 8]
        waits.append(consumer._fetcher._fetch_max_wait_ms)
        assert await asyncio.wait_for(parking.fetch(consumer, stopping), 5) == {}  # caught up: one look more
        parked = asyncio.create_task(parking.fetch(consumer, stopping))
        await asyncio.sleep(0.3)
        assert not parked.done() and parking.parked_since is not None
        stopping.set()
        await asyncio.wait_for(parked, 5)
        return waits

    try:
        waits = asyncio.run(scenario())
    finally:
        parking.close()
    assert parking.parked == 1 and consumer.fetches == 12
    assert waits[:4] == [10, 20, 40, 80] and waits[9] == MAX_FETCH_WAIT_MS, waits
    assert waits[10] == MAX_FETCH_WAIT_MS * 3 // 4, waits  # narrowed after the answer with records
    assert parking.timeout_ms == waits[10] + 5  # a look lasts at least one fetch wait


class ConsumerOfOnePartition:
    """The part of aiokafka's consumer that OffsetGaps uses: one assigned partition, its position,
    and the seeks made on it."""

    def __init__(self, position: int):
        self.tp = ("saga", 0)
        self.at = position
        self.seeks: list[int] = []
        self.assigned = {self.tp}

    def assignment(self):
        return set(self.assigned)

    async def position(self, tp):
        return self.at

    def seek(self, tp, offset):
        self.seeks.append(offset)
        self.at = offset

    async def seek_to_beginning(self, *tps):
        self.seeks.append("beginning")
        self.at = 0


def records(*offsets):
    return [SimpleNamespace(offset=o) for o in offsets]


def offsets_of(batches, tp):
    return [r.offset for r in batches.get(tp, [])]


def test_a_fetch_is_cut_at_a_gap_in_the_offsets_and_the_consumer_goes_back_to_it():
    from sagaboard.kernel.gaps import OffsetGaps

    gaps = OffsetGaps("stub")
    consumer = ConsumerOfOnePartition(position=10)
    tp = consumer.tp
    asyncio.run(gaps.learn(consumer))
    assert offsets_of(gaps.cut(consumer, {tp: records(10, 11, 12)}), tp) == [10, 11, 12] and consumer.seeks == []
    assert offsets_of(gaps.cut(consumer, {tp: records(13, 14, 16, 17)}), tp) == [13, 14]  # 15 not readable yet
    assert consumer.seeks == [15] and gaps.read_again == 1 and gaps.since
    assert gaps.cut(consumer, {tp: records(16, 17)}) == {}  # still missing: back again, counted once
    assert consumer.seeks == [15, 15] and gaps.read_again == 1
    assert offsets_of(gaps.cut(consumer, {tp: records(15, 16, 17)}), tp) == [15, 16, 17]  # filled
    assert not gaps.since and gaps.next[tp] == 18 and gaps.accepted == 0


def test_a_gap_at_the_first_fetch_after_assignment_is_read_again_from_the_position():
    from sagaboard.kernel.gaps import OffsetGaps

    gaps = OffsetGaps("stub")
    consumer = ConsumerOfOnePartition(position=7)
    tp = consumer.tp
    asyncio.run(gaps.learn(consumer))
    assert gaps.cut(consumer, {tp: records(8, 9)}) == {} and consumer.seeks == [7]


def test_a_position_moved_by_a_seek_elsewhere_is_taken_and_its_first_record_checked():
    from sagaboard.kernel.gaps import OffsetGaps

    gaps = OffsetGaps("stub")
    consumer = ConsumerOfOnePartition(position=0)
    tp = consumer.tp
    asyncio.run(gaps.learn(consumer))
    gaps.cut(consumer, {tp: records(0, 1, 2, 3)})
    consumer.at = 0  # the runtime sent it back to 0 (a broker restart: a new log)
    asyncio.run(gaps.learn(consumer))
    assert gaps.next[tp] == 0
    assert gaps.cut(consumer, {tp: records(1, 2)}) == {} and consumer.seeks == [0]  # 0 of the new log not readable yet
    consumer.assigned = set()  # given up...
    asyncio.run(gaps.learn(consumer))
    assert tp not in gaps.next
    consumer.assigned, consumer.at = {tp}, 40  # ...and assigned again, where a peer got to
    asyncio.run(gaps.learn(consumer))
    assert offsets_of(gaps.cut(consumer, {tp: records(40)}), tp) == [40] and consumer.seeks == [0]


def test_records_from_a_position_moved_during_the_fetch_are_dropped_and_read_again_from_the_beginning():
    from sagaboard.kernel.gaps import OffsetGaps

    gaps = OffsetGaps("stub")
    consumer = ConsumerOfOnePartition(position=50)
    tp = consumer.tp
    asyncio.run(gaps.learn(consumer))
    # aiokafka assigned the partition anew during the fetch and reset it: records from 1, and
    # nothing says whether its start (0) was skipped
    assert gaps.cut(consumer, {tp: records(1, 2, 3)}) == {} and consumer.seeks == []
    asyncio.run(gaps.learn(consumer))
    assert consumer.seeks == ["beginning"] and gaps.next[tp] == 0
    assert gaps.cut(consumer, {tp: records(1, 2, 3)}) == {} and consumer.seeks == ["beginning", 0]  # 0: read again


def test_a_gap_that_never_fills_is_accepted_after_the_patience(caplog):
    from sagaboard.kernel.gaps import OffsetGaps

    gaps = OffsetGaps("stub", patience_seconds=0.05)
    consumer = ConsumerOfOnePartition(position=0)
    tp = consumer.tp
    asyncio.run(gaps.learn(consumer))
    assert gaps.cut(consumer, {tp: records(1, 2)}) == {}  # a transaction marker at 0, say
    assert gaps.cut(consumer, {tp: records(1, 2)}) == {}
    asyncio.run(asyncio.sleep(0.06))
    assert offsets_of(gaps.cut(consumer, {tp: records(1, 2)}), tp) == [1, 2]
    assert gaps.accepted == 1 and consumer.seeks == [0, 0] and gaps.next[tp] == 3
    assert "still not readable" in caplog.text


class ConsumerWithAGap(ConsumerOfOnePartition):
    """A consumer whose broker answers the first fetch at offset 10 with 11 and 12 (10 not readable
    yet: Tansu's race between producers), the next two with nothing (its read took longer than the
    wait) and the last with 10, 11 and 12."""

    def __init__(self):
        super().__init__(position=10)
        self._fetcher = SimpleNamespace(_fetch_max_wait_ms=5)  # as aiokafka 0.14.0 keeps it
        self.answers = [records(11, 12), [], [], records(10, 11, 12)]

    def highwater(self, tp):
        return 13

    def resume(self, *tps):
        pass

    def pause(self, *tps):
        pass

    async def getmany(self, timeout_ms: int, max_records: int):
        await asyncio.sleep(0.001)
        got = self.answers.pop(0)
        if got:
            self.at = got[-1].offset + 1
        return {self.tp: got} if got else {}


def test_parking_reads_a_gap_again_at_once_and_widens_its_wait_only_for_empty_answers(tmp_path):
    from sagaboard.kernel.doorbell import Parking

    parking = Parking(tmp_path, "stub", True, linger_ms=1, poll_ms=60_000, fetch_wait_ms=5)
    consumer = ConsumerWithAGap()

    async def scenario():
        stopping = asyncio.Event()
        answers, waits = [], []
        for _ in range(4):  # no bell, the safety look a minute away: only `hot` makes these fetches
            answers.append(await asyncio.wait_for(parking.fetch(consumer, stopping), 5))
            waits.append(consumer._fetcher._fetch_max_wait_ms)
        return answers, waits

    parking.open()
    try:
        answers, waits = asyncio.run(scenario())
    finally:
        parking.close()
    assert answers[:3] == [{}, {}, {}] and consumer.seeks == [10]
    assert offsets_of(answers[3], consumer.tp) == [10, 11, 12]
    # cut at a gap: records came, the wait stays; then two empty answers widen it; records narrow it
    assert waits == [5, 10, 20, 15], waits


class ConsumerWithAPositionOnItsWay(ConsumerOfOnePartition):
    """Two partitions: the first's position is known, the second's is not yet (just assigned: its
    committed offset is on its way)."""

    def __init__(self):
        super().__init__(position=3)
        self.other = ("saga", 1)
        self.assigned = {self.tp, self.other}
        self.resumed: set = set()
        self._fetcher = SimpleNamespace(_fetch_max_wait_ms=5)

    async def position(self, tp):
        if tp == self.other:
            await asyncio.Event().wait()  # not known yet
        return self.at

    def highwater(self, tp):
        return None

    def resume(self, *tps):
        self.resumed |= set(tps)

    def pause(self, *tps):
        self.resumed -= set(tps)

    async def getmany(self, timeout_ms: int, max_records: int):
        await asyncio.sleep(0.001)
        fetched = {tp: records(self.at) for tp in self.resumed}  # only resumed partitions are fetched
        self.at += 1
        return fetched


def test_a_partition_whose_position_is_not_known_yet_is_not_fetched():
    from sagaboard.kernel.doorbell import Parking

    consumer = ConsumerWithAPositionOnItsWay()

    async def scenario(parking):
        return await asyncio.wait_for(parking.fetch(consumer, asyncio.Event()), 5), parking.hot

    for enabled in (True, False):
        consumer.at, consumer.resumed = 3, set()
        parking = Parking(Path(tempfile.mkdtemp()), "stub", enabled, linger_ms=1, poll_ms=60_000, fetch_wait_ms=5)
        parking.open()
        try:
            got, hot = asyncio.run(scenario(parking))
        finally:
            parking.close()
        assert set(got) == {consumer.tp} and offsets_of(got, consumer.tp) == [3], (enabled, got)
        assert not enabled or hot, "it looks again soon: the other position is on its way"


def test_the_stopped_line_says_where_a_stops_time_went():
    """StopSteps: nothing before a stop was asked for (a runtime that ended on its own); after it,
    the total and each step of at least 5 ms, in order, in seconds."""
    from sagaboard.kernel import consumer

    clock = iter([100.0, 100.25, 100.252, 101.752])
    steps = consumer.StopSteps(clock=lambda: next(clock))
    steps.lap("fetch")  # not stopping: not noted
    assert str(steps) == "" and steps.laps == []
    steps.start()  # 100.0
    steps.lap("fetch")  # 250 ms to see the stop
    steps.lap("commit")  # 2 ms: left out of the line
    steps.lap("batch")  # 1.5 s
    assert [step for step, _ in steps.laps] == ["fetch", "commit", "batch"]
    assert str(steps) == " in 1.75 s (fetch 0.25, batch 1.50)"


def test_a_batch_rolled_back_at_a_stop_leaves_its_deliveries_unfinished_and_the_runtime_whole():
    """apply_batch raises ShuttingDown when a stop comes mid-batch (tests/test_batch.py); the
    runtime takes that as the end of the batch, not as a part that died (watch() would exit 70,
    and supervisord would count a crash), and finishes none of its deliveries, so their offsets
    stay uncommitted and they are redelivered after the restart."""
    from sagaboard.kernel import faults
    from sagaboard.kernel.consumer import Runtime
    from sagaboard.kernel.service import Service

    def stopped_mid_batch(deliveries):
        raise faults.ShuttingDown()

    async def scenario():
        runtime = Runtime(Service("exchange"))
        runtime.service.apply_batch = stopped_mid_batch
        tp = ("saga", 0)
        runtime.offsets.received(tp, 7)
        runtime.in_flight = 1
        batch = runtime.watch(asyncio.create_task(runtime.apply([SimpleNamespace(tp=tp, record=SimpleNamespace(offset=7))])))
        await batch
        await asyncio.sleep(0)  # watch()'s callback has run
        assert runtime.failure is None and not runtime.stopping.is_set()
        assert runtime.in_flight == 1 and runtime.handled == 0
        assert runtime.offsets.to_commit({tp}) == {tp: 7}, "the commit stays before offset 7: it is read again"
        runtime.db_thread.shutdown()
        runtime.io_thread.shutdown()

    asyncio.run(scenario())


def test_services_off_the_critical_path_get_their_own_linger_and_fewer_early_looks(monkeypatch, settings):
    """Service.critical_path: the deadline and the monitor (no saga step waits on them) get
    SAGA_OFF_PATH_FETCH_LINGER_MS and an early look back every doorbell.OFF_PATH_EARLY_LOOK_SECONDS;
    order, exchange and point get SAGA_FETCH_LINGER_MS and EARLY_LOOK_SECONDS. The runtime of each
    saga module, as runservice builds it (README, "Off the critical path")."""
    import importlib

    from sagaboard.kernel import faults
    from sagaboard.kernel.consumer import Runtime
    from sagaboard.kernel.doorbell import EARLY_LOOK_SECONDS, OFF_PATH_EARLY_LOOK_SECONDS

    monkeypatch.setattr(faults, "service", faults.service)  # Runtime() names the running service
    settings.SAGA_FETCH_LINGER_MS, settings.SAGA_OFF_PATH_FETCH_LINGER_MS = 100, 700
    found = {}
    for name in settings.SERVICES:
        runtime = Runtime(importlib.import_module(f"services.{name}.saga").service)
        try:
            found[name] = (runtime.parking.linger, runtime.parking.spacing)
        finally:
            runtime.db_thread.shutdown()
            runtime.io_thread.shutdown()
    hop, off = (0.1, EARLY_LOOK_SECONDS), (0.7, OFF_PATH_EARLY_LOOK_SECONDS)
    assert OFF_PATH_EARLY_LOOK_SECONDS > EARLY_LOOK_SECONDS
    assert found == {"order": hop, "exchange": hop, "point": hop, "deadline": off, "monitor": off}
