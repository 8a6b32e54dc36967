"""Recovery after a long outage: the point service, stopped for a real while (DOWN_SECONDS) as
orders keep coming, catches up from its consumer group's committed offsets when it is started
again, and every saga ends consistent. (The deadline service restarted fires overdue deadlines at
once: tests/test_deadlines.py. The web server restarted resumes its WebSocket feeds: the
dashboard's tests.)"""
import asyncio
import time

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from tests.system import wait_until
from tests.test_poison import produce

pytestmark = pytest.mark.system
DOWN_SECONDS = 60  # the point service stays down this long while orders are placed
ORDERS_WHILE_DOWN = 12
SYSTEM_ENV = {"SAGA_DEADLINE_SECONDS": "300", "SAGA_TOPIC_PARTITIONS": "3"}
TOPIC = "choreography.deadline"


async def offsets(address: str, group: str, partitions: int) -> tuple[dict, dict]:
    """The group's committed offsets and the topic's end offsets, per partition (without joining
    the group). The end is read, not asked for: the embedded Tansu 0.6.0 answers a ListOffsets
    (latest) with one past the first record of a partition's last batch, so after a batch of
    several records its end offset stays short until the next write (a point that had read
    everything looked behind for good: the cause of this test's occasional timeout)."""
    tps = [TopicPartition(TOPIC, p) for p in range(partitions)]
    consumer = AIOKafkaConsumer(bootstrap_servers=address, group_id=group, enable_auto_commit=False, fetch_max_wait_ms=10)
    await consumer.start()
    try:
        committed = {tp.partition: await consumer.committed(tp) for tp in tps}
        reported = await consumer.end_offsets(tps)
        ends = {tp.partition: offset for tp, offset in reported.items()}
        consumer.assign(tps)  # assigned, not subscribed: reads without joining the group, commits nothing
        for tp, offset in reported.items():
            consumer.seek(tp, offset)
        for _ in range(20):  # bounded: a quiet topic has at most one batch's tail past the reported end
            batches = await consumer.getmany(timeout_ms=200)
            if not batches:
                break
            for tp, records in batches.items():
                ends[tp.partition] = max(ends[tp.partition], records[-1].offset + 1)
        return committed, ends
    finally:
        await consumer.stop()


def point_dead_letters(system):
    return [letter for letter in system.get("/dead-letters") if letter["service"] == "point"]


def test_service_down_for_a_minute_catches_up_from_committed_offsets(system):
    address = f"127.0.0.1:{system.broker_port}"
    system.grant("patient", 10_000)
    warm = [system.order("patient", 100)["id"] for _ in range(3)]
    assert all(system.settled(oid)["status"] == "APPROVED" for oid in warm)
    # a marker the point service dead-letters once; reading the topic again from the start would
    # dead-letter it a second time (dead letters have no inbox to dedupe them)
    asyncio.run(produce(address, TOPIC, [b"recovery marker, not an event"]))
    system.settled(system.order("patient", 100)["id"])
    assert len(point_dead_letters(system)) == 1

    # The sagas above may still publish their last events (OrderPlaced after PointUsed) for a few
    # ms after they settle: stop point once the topic is quiet and point has read all of it, so
    # the check below is about what the stop committed, not about an event published after it.
    seen = []

    def quiet_and_caught_up():
        committed, ends = asyncio.run(offsets(address, "sagaboard.point", 3))
        seen.append(ends)
        return committed == ends and len(seen) >= 2 and seen[-2] == ends

    wait_until(quiet_and_caught_up, 30, 0.5, "the topic to be quiet and point caught up")
    system.stop_service("point")
    committed, ends = asyncio.run(offsets(address, "sagaboard.point", 3))
    assert committed == ends, "a stopped service has committed everything it handled"

    down_since = time.monotonic()
    ids = []
    for i in range(ORDERS_WHILE_DOWN):
        amount = 20_000 if i == 5 else 300  # one order the holder cannot pay for
        ids.append(system.order("patient", amount)["id"])
        time.sleep(DOWN_SECONDS / ORDERS_WHILE_DOWN)
    assert time.monotonic() - down_since >= DOWN_SECONDS
    exchanged = {e["orderId"] for e in system.get("/exchanges")}
    assert set(ids) <= exchanged, "the other services went on while point was down"
    assert {system.get(f"/orders/{oid}")["status"] for oid in ids} == {"PENDING"}
    assert system.balance("patient") == 10_000 - 4 * 100
    _, ends_while_down = asyncio.run(offsets(address, "sagaboard.point", 3))
    assert sum(ends_while_down.values()) > sum(ends.values()), "events piled up for the stopped service"

    system.start_service("point")
    orders = [system.settled(oid, timeout=60) for oid in ids]
    statuses = [o["status"] for o in orders]
    assert statuses == ["APPROVED"] * 5 + ["REJECTED DUE TO POINT LIMIT"] + ["APPROVED"] * 6, statuses
    assert system.balance("patient") == 10_000 - 4 * 100 - 11 * 300
    for oid in ids:  # each event applied once by point, from the records that waited for it
        handled = [o for o in system.get("/outcomes", orderId=oid) if o["service"] == "point"]
        assert len(handled) == len({o["eventId"] for o in handled}) >= 1
    assert len(point_dead_letters(system)) == 1, "point resumed at its committed offsets, not from the start"
    # a service commits what it finished at most every COMMIT_EVERY_SECONDS (kernel/consumer.py), so
    # the last records' offsets may be committed a second after their orders settled (CI, b5b17c2)
    def committed_past_the_backlog():
        committed_after = asyncio.run(offsets(address, "sagaboard.point", 3))[0]
        return all(committed_after[p] >= ends_while_down[p] for p in ends_while_down)

    wait_until(committed_past_the_backlog, 10, 0.5, f"point to commit past what piled up while it was down: {ends_while_down}")
    assert system.wait_consistent(timeout=20)


# Large enough that point, working through it in batches, is still at it when it is told to stop
# (with 1,000 it had finished the lot before the stop arrived).
BACKLOG = 3000


def stop_took(log: str, service: str) -> float:
    """Seconds between the service's last 'stopping' and 'stopped' log lines."""
    from datetime import datetime

    def last(word):
        lines = [line for line in log.splitlines() if f" {service} INFO sagaboard.kernel.consumer: {service} {word}" in line]
        return datetime.strptime(lines[-1][:23], "%Y-%m-%d %H:%M:%S,%f")

    return (last("stopped") - last("stopping")).total_seconds()


def test_service_stopped_amid_a_backlog_exits_on_sigterm_and_catches_up(system):
    """Stopped while it works through a backlog, a service stops at once on SIGTERM (the soak
    found processes that finished every queued record first, outlasted supervisord's stop timeout
    and were SIGKILLed), leaving what it had not started unacknowledged, and finishes it when
    started again."""
    from concurrent.futures import ThreadPoolExecutor

    system.grant("backlog", 10 * BACKLOG)
    system.stop_service("point")
    with ThreadPoolExecutor(16) as pool:
        ids = [o["id"] for o in pool.map(lambda _: system.order("backlog", 10), range(BACKLOG))]
    system.supervisorctl("start", "point")
    wait_until(lambda: system.balance("backlog") < 10 * BACKLOG, 60, 0.05, "point to work on the backlog")
    system.stop_service("point")  # amid the backlog
    log = system.log_path.read_text(errors="replace")
    assert "killing 'point'" not in log, "point had to be SIGKILLed"
    stopped = [line for line in log.splitlines() if " point INFO sagaboard.kernel.consumer: point stopped" in line][-1]
    assert stop_took(log, "point") < 3, f"point took {stop_took(log, 'point'):.1f} s to stop: {stopped}"
    pending = [o for o in system.get("/orders") if o["id"] in set(ids) and o["status"] == "PENDING"]
    assert len(pending) >= BACKLOG // 4, "it stopped amid the backlog, leaving the rest for later"
    system.start_service("point")
    assert {system.settled(oid, timeout=120)["status"] for oid in ids} == {"APPROVED"}
    assert system.balance("backlog") == 0
    assert system.wait_consistent(timeout=20)
