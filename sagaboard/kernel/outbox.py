"""Transactional outbox: write an event with the state change, publish it after the commit.

Nothing leaves before its transaction commits: `emit()` and the batches (sagaboard/kernel/batch.py)
only insert rows in the caller's transaction. Then two parts publish them:

- the **publisher** of the process that wrote them, right after the commit (a service after each
  batch, the deadline timer, the web process after a POST): it sends the rows in the order they
  were written, waits for the broker's acknowledgement, marks them published and rings the
  doorbells of idle consumers (sagaboard/kernel/doorbell.py). So neither latency nor idle CPU
  depends on a poll interval.
- the **relay** of each service, the crash-safe fallback: rows still unpublished SAGA_OUTBOX_POLL_MS
  after they were written (their writer crashed between commit and publish, or could not reach
  the broker) are published by the one process of the service that holds the database's "relay"
  lease, in id order; at start-up it publishes every leftover at once.

A crash after the send and before the mark publishes a row twice; the inboxes drop the second
copy (DESIGN.md section 5). Within a process, rows leave in the order written; a leftover that the
relay publishes after a crash may follow newer events of the same order, which the safe policy's
tombstones and terminal states make harmless (README, "What the safe policy does").
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from collections import deque
from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from . import faults, leases
from .events import Event
from .models import OutboxMessage

log = logging.getLogger(__name__)

LEASE_SECONDS = 3.0
BATCH = 500
IDLE_LOOKS = 10  # the relay's looks that found nothing before it looks less often
IDLE_BACKOFF = 5
RETRY_SECONDS = 0.5
# A publisher lingers (SAGA_PUBLISH_LINGER_MS) only while it is busy: when its last two publishes
# were less than two lingers apart (Publisher.busy). One idle longer sends at once, so a lone
# order's hops do not each wait the linger (traced: 5.4–6.4 ms of each hop's ~20 ms, one order at
# a time; README, "A lone order's hops"); nor, with the default 25 ms, does one that publishes
# once per lone order, about every 55 ms (README, "One read of a batch's orders, and a lone
# order's publishes").

# The publisher of this process, if it has one (set by the service runtime or the web process):
# emit() hands it the rows it wrote when their transaction commits.
_publisher: Publisher | None = None


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def emit(using: str, event: Event) -> Event:
    """Queue `event` for publication; call inside the transaction that makes it true. Once that
    transaction commits, this process's publisher sends it (or the relay does, later)."""
    row = OutboxMessage.objects.using(using).create(
        event_id=event.eventId,
        event_type=event.eventType,
        order_id=event.orderId,
        key=event.key.decode(),
        body=event.to_bytes(),
    )
    transaction.on_commit(lambda: after_commit(using, [row]), using=using)
    return event


def after_commit(using: str, rows: list[OutboxMessage]) -> None:
    """Hand committed rows to this process's publisher (from any thread); without one, the relay
    of the service that owns `using` publishes them later."""
    if _publisher is not None and rows:
        _publisher.submit(using, rows)


def install(publisher: Publisher | None) -> None:
    """Make `publisher` the one emit() and after_commit() hand rows to (None: none)."""
    global _publisher
    _publisher = publisher


async def _send(producer, topic: str, row: OutboxMessage):
    """Queue one row for sending (twice, if fault injection says so); the future of its first ack."""
    headers = [("type", row.event_type.encode())]
    ack = await producer.send(topic, value=bytes(row.body), key=row.key.encode(), headers=headers)
    if faults.duplicate():
        await producer.send(topic, value=bytes(row.body), key=row.key.encode(), headers=headers)
    return ack


async def publish(producer, topic: str, rows: list[OutboxMessage]) -> None:
    """Send `rows` in order and wait for every acknowledgement.

    Raises KafkaError (or TimeoutError) when the broker did not take them."""
    faults.crash_point("relay_before_publish")
    acks = [await _send(producer, topic, row) for row in rows]  # each is queued before the next: in order
    await asyncio.gather(*acks)
    faults.crash_point("relay_after_publish")


def mark_published(using: str, rows: list[OutboxMessage]) -> None:
    """Stamp rows published in one statement. Where each went (partition, offset) is in the
    monitor's event log (GET /events), not repeated here: a per-row UPDATE cost more than the rest
    of a publish."""
    OutboxMessage.objects.using(using).filter(id__in=[row.id for row in rows]).update(published_at=timezone.now())


class Publisher:
    """Publishes the rows this process committed, right after each commit, in the order submitted.

    `submit()` may be called from any thread (a Django view's, a database thread); the rows are
    sent from the event loop the publisher runs on and the doorbells rung (`ring`, called with the
    set of event types published: doorbell.Ringer.ring). A row the
    broker does not take is retried here until it is, while the relay may publish it too after
    SAGA_OUTBOX_POLL_MS (a duplicate the inboxes drop). Rows sent are marked published in
    `executor`, gathered for MARK_SECONDS into one transaction per database: with SQLite every
    write transaction takes the database's one write lock, so one per publish was costly.

    While it is busy (its last two publishes were less than two lingers apart), it waits
    `linger_ms` after a commit so that more commits join one produce request; an idle one sends
    at once. Rows submitted while a publish waits for the broker's ack join the next one either
    way."""

    MARK_SECONDS = 0.1

    def __init__(self, producer, topic: str, executor, ring=None, linger_ms: int = 0):
        self.linger = linger_ms / 1000
        self.producer = producer
        self.topic = topic
        self.executor = executor
        self.ring = ring
        self.queue: deque[tuple[str, OutboxMessage]] = deque()
        self.unmarked: dict[str, list[OutboxMessage]] = {}
        self.loop: asyncio.AbstractEventLoop | None = None
        self.wake = asyncio.Event()
        self.marks_due = asyncio.Event()
        self.published = 0
        self.publish_times = deque([float("-inf")] * 2, maxlen=2)  # time.monotonic() of the last two publishes

    def accept(self, loop: asyncio.AbstractEventLoop | None) -> None:
        """Take rows from now on, before `run` starts on `loop`: they wait in the queue until it
        sends them (a process's first commits come while its producer still connects). None: take
        no more (they are left to the relay)."""
        self.loop = loop

    def submit(self, using: str, rows: list[OutboxMessage]) -> None:
        loop = self.loop
        if loop is None:
            return  # not running (yet, or any more): the relay publishes them
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(using, rows)
        else:
            loop.call_soon_threadsafe(self._enqueue, using, rows)

    def _enqueue(self, using: str, rows: list[OutboxMessage]) -> None:
        self.queue.extend((using, row) for row in rows)
        self.wake.set()

    async def run(self, stopping: asyncio.Event) -> None:
        """Publish until `stopping`, then what is queued (at most a few seconds more)."""
        self.loop = asyncio.get_running_loop()
        stop = asyncio.ensure_future(stopping.wait())
        marking = asyncio.create_task(self.mark(stopping))
        try:
            while not stopping.is_set():
                wake = asyncio.ensure_future(self.wake.wait())
                await asyncio.wait({wake, stop}, return_when=asyncio.FIRST_COMPLETED)
                wake.cancel()
                if self.busy() and not stopping.is_set():
                    await asyncio.sleep(self.linger)  # let more commits join this publish
                self.wake.clear()
                await self.drain(stopping)
            await asyncio.wait_for(self.drain(), 5)
        except TimeoutError:
            log.warning("publisher stopped with %s rows unpublished; the relay publishes them", len(self.queue))
        finally:
            stop.cancel()
            self.loop = None
            self.marks_due.set()
            await asyncio.gather(marking, return_exceptions=True)

    async def drain(self, stopping: asyncio.Event | None = None) -> None:
        """Publish what is queued; on a failure, try again until `stopping` (without it: once)."""
        while self.queue:
            taken = [self.queue.popleft() for _ in range(min(BATCH, len(self.queue)))]
            rows = [row for _, row in taken]
            try:
                await publish(self.producer, self.topic, rows)
            except Exception as exc:  # the broker did not take them: keep them first in line
                self.queue.extendleft(reversed(taken))
                log.warning("publishing %s events failed, retrying: %r", len(rows), exc)
                if stopping is None:
                    return
                try:
                    await asyncio.wait_for(stopping.wait(), RETRY_SECONDS)
                    return
                except TimeoutError:
                    continue
            self.publish_times.append(time.monotonic())
            if self.ring is not None:
                self.ring({row.event_type for row in rows})
            for using, row in taken:
                self.unmarked.setdefault(using, []).append(row)
            self.marks_due.set()
            self.published += len(rows)

    def busy(self) -> bool:
        """Whether to linger before the next publish: a linger is set and the last two publishes
        were both less than two lingers ago, about 40 or more publishes a second with the default
        25 ms, when a linger gathers about one more commit or more (under load). An idle publisher
        sends at once, and so does one that publishes once per lone order (each process about
        every 55 ms, one order at a time: when one publish in the last 50 ms made it busy, many
        of those hops lingered). Times are taken at the broker's ack: when acks take longer than
        a linger, every other publish goes at once, but commits join a publish that waits for its
        ack anyway."""
        return self.linger > 0 and time.monotonic() - self.publish_times[0] < 2 * self.linger

    async def mark(self, stopping: asyncio.Event) -> None:
        """Mark what was sent, every MARK_SECONDS at most; the last marks at stop."""
        loop = asyncio.get_running_loop()
        while True:
            await self.marks_due.wait()
            if not stopping.is_set():
                await asyncio.sleep(self.MARK_SECONDS)
            self.marks_due.clear()
            batches, self.unmarked = self.unmarked, {}
            for using, rows in batches.items():
                try:
                    await loop.run_in_executor(self.executor, mark_published, using, rows)
                except Exception as exc:  # unmarked rows are published again by the relay: duplicates only
                    log.warning("could not mark %s events of %s published: %r", len(rows), using, exc)
            if stopping.is_set() and not self.unmarked and self.loop is None:
                return


class Relay:
    """The crash-safe fallback for one database's outbox: publishes, in id order, the rows no
    publisher marked within `grace_seconds` of their writing. Several processes may run one; the
    database's "relay" lease picks the one that publishes."""

    def __init__(self, using: str, producer, topic: str, poll_seconds: float, executor, on_failure=None, ring=None):
        self.using = using
        self.producer = producer
        self.topic = topic
        self.poll_seconds = poll_seconds
        self.grace_seconds = poll_seconds
        self.executor = executor
        self.holder = process_name()
        self.lease_until = 0.0
        self.wake = asyncio.Event()
        self.published = 0
        self.on_failure = on_failure
        self.ring = ring

    # --- database side (runs in the relay's thread) ---------------------------------------------
    def _hold_lease(self) -> bool:
        now = time.time()
        if self.lease_until - now > LEASE_SECONDS / 2:
            return True
        if not leases.take(self.using, "relay", self.holder, LEASE_SECONDS):
            self.lease_until = 0.0
            return False
        self.lease_until = now + LEASE_SECONDS
        return True

    def _pending(self, grace_seconds: float) -> list[OutboxMessage]:
        if not self._hold_lease():
            return []
        rows = OutboxMessage.objects.using(self.using).filter(published_at__isnull=True)
        if grace_seconds > 0:
            rows = rows.filter(created_at__lte=timezone.now() - timedelta(seconds=grace_seconds))
        return list(rows.order_by("id").only("id", "event_type", "key", "body")[:BATCH])

    def release(self) -> None:
        leases.release(self.using, self.holder, ["relay"])

    # --- broker side ------------------------------------------------------------------------------
    async def publish_pending(self, grace_seconds: float = 0.0) -> int:
        """Publish every unpublished row written at least `grace_seconds` ago (0: all of them);
        how many. Raises when the broker or the database fails (the rows stay)."""
        loop = asyncio.get_running_loop()
        total = 0
        while True:
            rows = await loop.run_in_executor(self.executor, self._pending, grace_seconds)
            if not rows:
                return total
            await publish(self.producer, self.topic, rows)
            if self.ring is not None:
                self.ring({row.event_type for row in rows})
            await loop.run_in_executor(self.executor, mark_published, self.using, rows)
            self.published += len(rows)
            total += len(rows)
            if len(rows) < BATCH:
                return total

    async def run(self, stopping: asyncio.Event) -> None:
        """Look every `poll_seconds` while leftovers turn up; after IDLE_LOOKS looks that found none,
        every IDLE_BACKOFF × `poll_seconds` (an idle process should sleep; a writer that died is
        rare, and its leftovers wait a few seconds more)."""
        grace = 0.0  # at start-up every leftover goes, however young
        empty = 0
        while not stopping.is_set():
            try:
                published = await self.publish_pending(grace)
                if published:
                    log.info("outbox relay of %s published %s leftover events", self.using, published)
                grace = self.grace_seconds
                empty = 0 if published else empty + 1
            except Exception as exc:  # broker or database hiccup: keep the rows, try again shortly
                log.warning("outbox relay of %s failed, retrying: %r", self.using, exc)
                empty = 0
                if self.on_failure is not None:
                    await self.on_failure()
            wait = self.poll_seconds * (IDLE_BACKOFF if empty >= IDLE_LOOKS else 1)
            waiters = [asyncio.ensure_future(self.wake.wait()), asyncio.ensure_future(stopping.wait())]
            await asyncio.wait(waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED)
            for waiter in waiters:
                waiter.cancel()
            self.wake.clear()
        await asyncio.get_running_loop().run_in_executor(self.executor, self.release)
