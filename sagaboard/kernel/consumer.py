"""The consumer loop every service runs, and the one-line way a service declares its handlers.

    service = Service("exchange")

    @service.handles("OrderCreated", before=apply_seed_delays)
    def exchange_order(event, ctx): ...

A handler runs inside one database transaction of its service together with the inbox record of
the event, and the outbox rows of the events it emits (`ctx.emit`). Offsets are committed to Kafka
only after that transaction commits: at-least-once delivery, exactly-once effect. A handler
returns None when it applied the event, or `ignored(reason)` / `dropped(reason)` to say why not.
`before` is a coroutine run before the transaction (for delays) and may return `dropped(...)` too.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import traceback
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, KafkaError
from django.conf import settings
from django.db import IntegrityError, InterfaceError, OperationalError, close_old_connections, transaction
from django.utils import timezone

from . import broker, faults, outbox
from .events import Event, InvalidEvent
from .leases import PartitionLeases
from .models import DeadLetter, InboxRecord, ProcessHeartbeat

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_SECONDS = 5.0
TOPIC_RECHECK_SECONDS = 3.0


@dataclass(frozen=True)
class Outcome:
    kind: str
    reason: str = ""


APPLIED = Outcome(InboxRecord.APPLIED)


def ignored(reason: str) -> Outcome:
    """The event is valid but changes nothing here (late, duplicate in meaning, after a terminal state)."""
    return Outcome(InboxRecord.IGNORED, reason)


def dropped(reason: str) -> Outcome:
    """A forward step refused an expired event."""
    return Outcome(InboxRecord.DROPPED, reason)


class Abort(Exception):
    """Raised inside a handler to roll its effects back and record `outcome` instead, e.g. when
    the expiry re-check just before commit finds the deadline passed."""

    def __init__(self, outcome: Outcome):
        super().__init__(outcome.reason)
        self.outcome = outcome


@dataclass(frozen=True)
class Handler:
    fn: Callable
    before: Callable | None = None


class Context:
    """What a handler may do besides touching its own models: emit events of the same saga."""

    def __init__(self, service: Service, event: Event):
        self.service = service
        self.event = event
        self.emitted: list[Event] = []

    @property
    def using(self) -> str:
        return self.service.name

    def emit(self, event_type: str, payload: dict) -> Event:
        event = outbox.emit(self.using, self.event.caused(event_type, self.service.name, payload))
        self.emitted.append(event)
        return event


class Service:
    """A saga participant: a name (also its database alias and its offsets' group) and its handlers."""

    def __init__(self, name: str):
        self.name = name
        self.handlers: dict[str, Handler] = {}
        self.background: list[Callable] = []

    def handles(self, *event_types: str, before: Callable | None = None):
        def register(fn):
            for event_type in event_types:
                self.handlers[event_type] = Handler(fn, before)
            return fn

        return register

    def task(self, fn):
        """Register a coroutine `fn(runtime)` that runs beside the consumer (the deadline timer)."""
        self.background.append(fn)
        return fn

    # --- one record: accept (parse, route, dedupe), then apply in one transaction ---------------
    def dead_letter(self, record, error: str) -> None:
        DeadLetter.objects.using(self.name).create(
            topic=record.topic,
            partition=record.partition,
            offset=record.offset,
            key=record.key,
            value=record.value,
            headers=[[k, v.decode("utf-8", "replace")] for k, v in (record.headers or ())],
            error=error,
        )
        log.warning("%s dead-lettered %s[%s]@%s: %s", self.name, record.topic, record.partition, record.offset, error)

    def accept(self, record) -> tuple[Event, Handler] | None:
        """The event and its handler, or None when it is not ours, already applied, or invalid
        (then it is in the dead-letter store)."""
        try:
            event = Event.from_bytes(record.value, settings.SAGA_MAX_EVENT_BYTES)
        except InvalidEvent as exc:
            self.dead_letter(record, str(exc))
            return None
        handler = self.handlers.get(event.eventType)
        if handler is None or InboxRecord.objects.using(self.name).filter(event_id=event.eventId).exists():
            return None
        return event, handler

    def _record(self, event: Event, outcome: Outcome, partition, offset) -> None:
        InboxRecord.objects.using(self.name).create(
            event_id=event.eventId,
            event_type=event.eventType,
            order_id=event.orderId,
            outcome=outcome.kind,
            reason=outcome.reason[:255],
            partition=partition,
            offset=offset,
        )

    def apply(self, handler: Handler, event: Event, outcome: Outcome | None = None, partition=None, offset=None) -> list[Event]:
        """Run the handler (unless `before` already decided the outcome) in one transaction with
        its inbox record and outbox rows; returns the events it emitted."""
        ctx = Context(self, event)
        try:
            try:
                with transaction.atomic(using=self.name):
                    if outcome is None:
                        outcome = handler.fn(event, ctx) or APPLIED
                    faults.crash_point("handler_mid")
                    self._record(event, outcome, partition, offset)
            except Abort as abort:
                outcome, ctx.emitted = abort.outcome, []
                with transaction.atomic(using=self.name):
                    self._record(event, outcome, partition, offset)
        except IntegrityError:
            if InboxRecord.objects.using(self.name).filter(event_id=event.eventId).exists():
                return []  # another process of this service applied it meanwhile
            raise
        if outcome.kind != InboxRecord.APPLIED:
            log.info("%s %s %s of order %s: %s", self.name, outcome.kind, event.eventType, event.orderId, outcome.reason)
        faults.crash_point("handler_after_commit")
        return ctx.emitted


class PartitionProgress:
    """Offsets of one partition handed to lanes; the committable offset is the lowest unfinished."""

    def __init__(self):
        self.pending: set[int] = set()
        self.high = 0  # one past the highest offset received
        self.committed = -1

    def committable(self) -> int:
        return min(self.pending) if self.pending else self.high


class Runtime:
    """One running process of a service: consumer, outbox relay, background tasks, heartbeat.

    Records are handled in lanes, one per Kafka key (order id): the events of one order are
    applied in order, while a slow order (the seed's delays) never holds up the others. Offsets
    are committed up to the lowest record not yet finished in each partition.
    """

    HANDLER_ATTEMPTS = 3
    MAX_IN_FLIGHT = 2000

    def __init__(self, service: Service):
        self.service = service
        faults.service = service.name
        self.stopping = asyncio.Event()
        self.db_threads = ThreadPoolExecutor(settings.SAGA_HANDLER_THREADS, thread_name_prefix=f"{service.name}-db")
        self.io_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{service.name}-io")
        self.consumer = None
        self.relay: outbox.Relay | None = None
        self.handled = 0
        self.started_at = timezone.now()
        self.lanes: dict[bytes, deque] = {}
        self.lane_tasks: set[asyncio.Task] = set()
        self.progress: dict = {}
        self.in_flight = 0
        self.room = asyncio.Event()
        self.topic_checked_at = 0.0
        self.leases: PartitionLeases | None = None
        self.partitions_changed = asyncio.Event()

    async def in_io_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.io_thread, fn, *args)

    async def in_db_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.db_threads, fn, *args)

    def wake_relay(self) -> None:
        if self.relay is not None:
            self.relay.wake.set()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        producer = broker.producer()
        if not await broker.start_with_retry(producer, "producer", self.stopping):
            return
        try:
            await broker.ensure_topic(self.stopping)
            self.relay = outbox.Relay(self.service.name, producer, settings.SAGA_TOPIC, settings.SAGA_OUTBOX_POLL_MS / 1000,
                                      self.io_thread, on_failure=self.recover_topic)
            self.consumer = broker.consumer(f"sagaboard.{self.service.name}", subscribe=False)
            if not await broker.start_with_retry(self.consumer, "consumer", self.stopping):
                return
            self.leases = PartitionLeases(self.service.name, outbox.process_name(), settings.SAGA_PARTITION_LEASE_SECONDS)
            tasks = [
                asyncio.create_task(self.relay.run(self.stopping), name="relay"),
                asyncio.create_task(self.heartbeat(), name="heartbeat"),  # also claims the partitions
            ]
            try:
                log.info("%s started: topic %s, group sagaboard.%s", self.service.name, settings.SAGA_TOPIC, self.service.name)
                tasks += [asyncio.create_task(fn(self), name=fn.__name__) for fn in self.service.background]
                await self.consume()
            finally:
                self.stopping.set()
                # Records queued for a database thread but not started stay unacknowledged (they
                # are redelivered): with a backlog, finishing them all outlasted supervisord's
                # stop timeout and the process was SIGKILLed (found by the soak).
                self.db_threads.shutdown(wait=False, cancel_futures=True)
                if self.lane_tasks:
                    await asyncio.wait(self.lane_tasks, timeout=10)
                await self.commit_progress()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.in_io_thread(self.leases.release_all)  # its peers take the partitions at once
                await self.consumer.stop()
        finally:
            await producer.stop()
            self.db_threads.shutdown(wait=False, cancel_futures=True)
            self.io_thread.shutdown(wait=True)
            log.info("%s stopped", self.service.name)

    def stop(self) -> None:
        log.info("%s stopping", self.service.name)
        faults.shutting_down.set()
        self.stopping.set()

    async def consume(self) -> None:
        while not self.stopping.is_set():
            if self.in_flight >= self.MAX_IN_FLIGHT:
                self.room.clear()
                try:
                    await asyncio.wait_for(self.room.wait(), 0.2)
                except TimeoutError:
                    pass
            elif not self.consumer.assignment():  # no partition (yet): its peers hold them all
                try:
                    await asyncio.wait_for(self.partitions_changed.wait(), 0.2)
                except TimeoutError:
                    pass
                self.partitions_changed.clear()
            else:
                batches = await self.consumer.getmany(timeout_ms=200, max_records=500)
                for tp, records in batches.items():
                    progress = self.progress.setdefault(tp, PartitionProgress())
                    if records and records[0].offset < progress.high:
                        # offsets went back: the broker lost the partition and started it anew
                        log.warning("%s: %s restarted at offset %s", self.service.name, tp, records[0].offset)
                        progress.committed = -1
                    for record in records:
                        progress.pending.add(record.offset)
                        progress.high = record.offset + 1
                        self.dispatch(tp, record)
            await self.commit_progress()

    def dispatch(self, tp, record) -> None:
        self.in_flight += 1
        lane = self.lanes.get(record.key)
        if lane is not None:
            lane.append((tp, record))
            return
        lane = self.lanes[record.key] = deque([(tp, record)])
        task = asyncio.create_task(self.run_lane(record.key, lane))
        self.lane_tasks.add(task)
        task.add_done_callback(self.lane_tasks.discard)

    async def run_lane(self, key, lane: deque) -> None:
        try:
            while lane and not self.stopping.is_set():
                tp, record = lane[0]
                try:
                    emitted = await self.process_with_retry(record)
                except faults.ShuttingDown:
                    return
                lane.popleft()
                self.in_flight -= 1
                self.room.set()
                progress = self.progress.get(tp)
                if progress is not None:  # None: the partition went to a peer meanwhile
                    progress.pending.discard(record.offset)
                if emitted:
                    self.wake_relay()
        finally:
            if self.lanes.get(key) is lane:
                del self.lanes[key]

    async def commit_progress(self) -> None:
        offsets = {}
        for tp, progress in self.progress.items():
            target = progress.committable()
            if target > progress.committed and tp in self.consumer.assignment():
                offsets[tp] = target
        if not offsets:
            return
        try:
            # aiokafka retries a commit on an unknown topic forever: bound it
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT_SECONDS)
            for tp, target in offsets.items():
                self.progress[tp].committed = target
        except (CommitFailedError, KafkaError, TimeoutError) as exc:
            # partitions moved to another process (it redelivers, the inbox dedupes), or the
            # broker lost the topic (the embedded one keeps nothing across a restart)
            log.warning("%s could not commit %s: %r", self.service.name, offsets, exc)
            await self.recover_topic()

    async def recover_topic(self) -> None:
        """Create the topic again if the broker lost it; at most every few seconds."""
        now = asyncio.get_running_loop().time()
        if now - self.topic_checked_at < TOPIC_RECHECK_SECONDS:
            return
        self.topic_checked_at = now
        try:
            await asyncio.wait_for(broker.ensure_topic(self.stopping), COMMIT_TIMEOUT_SECONDS)
        except Exception as exc:
            log.warning("%s could not check the topic: %r", self.service.name, exc)

    async def process_with_retry(self, record) -> list[Event]:
        """Transient database errors are retried until they pass; a handler that keeps failing
        for another reason dead-letters the event so its order is not blocked forever."""
        attempt = 0
        while True:
            attempt += 1
            try:
                accepted = await self.in_db_thread(self.service.accept, record)
                if accepted is None:  # finished in accept: a duplicate, a dead letter, the monitor's record
                    self.handled += 1
                    return []
                event, handler = accepted
                outcome = await handler.before(event) if handler.before else None
                emitted = await self.in_db_thread(self.service.apply, handler, event, outcome, record.partition, record.offset)
                self.handled += 1
                return emitted
            except faults.ShuttingDown:
                raise
            except (OperationalError, InterfaceError) as exc:
                await self.in_db_thread(close_old_connections)
                log.warning("%s database error, retrying: %s", self.service.name, exc)
                await faults.sleep(min(0.1 * attempt, 2.0))
            except Exception:
                if self.stopping.is_set():
                    raise faults.ShuttingDown()  # its database thread was shut down: redelivered later
                if attempt < self.HANDLER_ATTEMPTS:
                    log.exception("%s handler failed (attempt %s)", self.service.name, attempt)
                    await faults.sleep(0.05 * attempt)
                    continue
                await self.in_db_thread(self.service.dead_letter, record, "handler failed: " + traceback.format_exc(limit=5))
                return []
    async def heartbeat(self) -> None:
        """Every second (a third of a lease if that is shorter): report this process (its row
        also counts it in for its peers' shares of the partitions), renew and adjust its share of
        the partitions, and notice a broker that lost the topic."""
        name = outbox.process_name()
        while not self.stopping.is_set():
            assignment = sorted(tp.partition for tp in self.consumer.assignment())
            lag = 0
            for tp in self.consumer.assignment():
                high = self.consumer.highwater(tp)
                try:
                    position = await asyncio.wait_for(self.consumer.position(tp), 1.0) if high is not None else None
                except Exception:
                    position = None
                if high is not None and position is not None:
                    lag += max(0, high - position)
            values = dict(
                service=self.service.name, pid=os.getpid(), started_at=self.started_at, seen_at=timezone.now(),
                assignment=assignment, lag=lag, handled=self.handled,
            )
            try:
                await self.in_io_thread(
                    lambda: ProcessHeartbeat.objects.using(self.service.name).update_or_create(process=name, defaults=values)
                )
                await self.rebalance()
                await self.notice_a_lost_log()
            except Exception:
                log.exception("heartbeat failed")
            try:
                await asyncio.wait_for(self.stopping.wait(), min(1.0, settings.SAGA_PARTITION_LEASE_SECONDS / 3))
            except TimeoutError:
                pass
        await self.in_io_thread(lambda: ProcessHeartbeat.objects.using(self.service.name).filter(process=name).delete())

    async def notice_a_lost_log(self) -> None:
        """The embedded broker keeps nothing across a restart: the topic comes back empty, its
        offsets start again from 0, and the group's committed offsets are gone. A partition this
        process has committed on whose committed offset is gone is read again from its (new)
        beginning, so nothing published since the restart is missed (only the broker can lose it:
        this process holds the partition's lease). A real Kafka could also drop the offset of a
        partition idle for longer than its offsets.retention.minutes (7 days by default); the
        partition is then read again and every event ignored by the inbox."""
        for tp in self.consumer.assignment():
            progress = self.progress.get(tp)
            if progress is None or progress.committed <= 0:
                continue
            if await asyncio.wait_for(self.consumer.committed(tp), COMMIT_TIMEOUT_SECONDS) is None:
                log.warning("%s: the committed offset of %s is gone (broker restarted); reading it from the start",
                            self.service.name, tp)
                progress.committed = -1
                progress.high = 0
                await self.consumer.seek_to_beginning(tp)

    async def rebalance(self) -> None:
        """Consume the partitions this process holds leases on (sagaboard/kernel/leases.py)."""
        partitions = self.consumer.partitions_for_topic(settings.SAGA_TOPIC)
        if not partitions:
            await self.consumer.topics()  # not in the metadata yet (or the broker lost the topic)
            return
        keep, surplus = await self.in_io_thread(self.leases.claim, len(partitions))
        current = {tp.partition for tp in self.consumer.assignment()}
        if keep == current and not surplus:
            return
        await self.commit_progress()  # hand over where this process got to
        for tp in list(self.progress):
            if tp.partition in keep:
                # assign() sends every partition back to its committed offset
                self.progress[tp].high = max(self.progress[tp].committed, 0)
            else:
                del self.progress[tp]
        self.consumer.assign([TopicPartition(settings.SAGA_TOPIC, p) for p in sorted(keep)])
        if surplus:
            await self.in_io_thread(self.leases.release, surplus)
        log.info("%s consumes partitions %s", self.service.name, sorted(keep))
        self.partitions_changed.set()
