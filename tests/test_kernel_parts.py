"""The runtime's small parts, each on its own: lanes (per-order order), offsets (what may be
committed), doorbells (waking a parked consumer). No broker, no database: their rules only."""
import asyncio
import os
import socket
from dataclasses import dataclass

from sagaboard.kernel.doorbell import Doorbell, Ringer, directory
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
