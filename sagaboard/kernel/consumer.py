"""The runtime of one service process: it consumes the saga topic and applies records in batches.

It is made of small parts, each with one job:

- `Parking` (doorbell.py): a consumer fetches when a doorbell rang, not in a poll loop;
- `OffsetGaps` (gaps.py): a fetch that skipped an offset is cut there and the gap read again;
- the fetch loop (here): records in, parsed once, into lanes, offsets noted;
- `Lanes` (lanes.py): one FIFO per order id, so an order's events apply in order;
- `apply_batch` (batch.py): a batch of lanes' front records in one transaction;
- `OffsetTracker` (offsets.py): what may be committed, committed after the database commit;
- `Publisher` and `Relay` (outbox.py): the events a batch emitted, published right after its commit;
- `Membership` (membership.py): heartbeats and the partition leases.

Delivery is at least once and the effect exactly once (DESIGN.md section 5): offsets are committed
only after the batch's transaction commits, and the inbox makes a redelivered event a no-op.
"""
from __future__ import annotations

import asyncio
import logging
import signal
import time
from concurrent.futures import ThreadPoolExecutor

from aiokafka.errors import CommitFailedError, KafkaError
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections
from django.utils import timezone

from . import broker, doorbell, faults, outbox
from .batch import Delivery
from .events import Event, InvalidEvent
from .lanes import Lanes
from .membership import Membership
from .offsets import OffsetTracker
from .service import Service  # noqa: F401  (services import the handler API from kernel.service)

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_SECONDS = 5.0
TOPIC_RECHECK_SECONDS = 3.0
BATCH_LIMIT = 500  # deliveries in one transaction
MAX_IN_FLIGHT = 5000  # deliveries received and not finished before the fetch loop waits
COMMIT_EVERY_SECONDS = 1.0  # offsets are committed at most this often while busy (always when idle)


class StopSteps:
    """Where the time between a process's 'stopping' and 'stopped' log lines went: each step's
    seconds, in order. A stop must end well inside supervisord's stopwaitsecs
    (sagaboard/supervision.py), or the process is SIGKILLed; the line says which step was slow.
    Renders as '' when no stop was asked for (the runtime ended on its own, e.g. no broker)."""

    def __init__(self, clock=time.monotonic):
        self.clock = clock  # seconds
        self.began: float | None = None
        self.at = 0.0
        self.laps: list[tuple[str, float]] = []

    def start(self) -> None:
        if self.began is None:
            self.began = self.at = self.clock()

    def lap(self, step: str) -> None:
        """Note that `step` ended now (ignored before start(): the process is not stopping)."""
        if self.began is not None:
            now = self.clock()
            self.laps.append((step, now - self.at))
            self.at = now

    def __str__(self) -> str:
        if self.began is None:
            return ""
        steps = ", ".join(f"{step} {seconds:.2f}" for step, seconds in self.laps if seconds >= 0.005)
        return f" in {self.at - self.began:.2f} s" + (f" ({steps})" if steps else "")


class Runtime:
    """One running process of a service: fetch loop, batch loop, publisher, relay, membership."""

    def __init__(self, service):
        self.service = service
        faults.service = service.name
        self.stopping = asyncio.Event()
        self.db_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{service.name}-db")
        self.io_thread = ThreadPoolExecutor(1, thread_name_prefix=f"{service.name}-io")
        self.consumer = None
        self.publisher: outbox.Publisher | None = None
        self.relay: outbox.Relay | None = None
        self.membership: Membership | None = None
        self.handled = 0
        self.failure: BaseException | None = None  # a part of the runtime that died (see watch)
        self.started_at = timezone.now()
        self.lanes: Lanes[Delivery] = Lanes(key=lambda d: d.key, must_wait=Delivery.must_wait)
        self.offsets = OffsetTracker()
        self.in_flight = 0
        self.work = asyncio.Event()  # lanes may have something to take
        self.room = asyncio.Event()  # the fetch loop may take more
        self.befores: set[asyncio.Task] = set()
        self.committed_at = 0.0
        self.topic_checked_at = 0.0
        self.parking = doorbell.parking(service.name, service.wants(), service.critical_path)
        self.ringer = doorbell.ringer()
        self.broker_epoch: str | None = None  # the embedded broker's start this consumer reads (broker.epoch)
        self.lost_logs: set = set()  # partitions to read again from their beginning (Membership.notice_a_lost_log)
        self.stop_steps = StopSteps()  # where a stop's time went, for its 'stopped' log line

    async def in_io_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.io_thread, fn, *args)

    async def in_db_thread(self, fn, *args):
        return await asyncio.get_running_loop().run_in_executor(self.db_thread, fn, *args)

    # --- lifecycle -----------------------------------------------------------------------------------
    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        producer = broker.producer()
        if not await broker.start_with_retry(producer, "producer", self.stopping):
            return
        self.parking.open()
        try:
            await broker.ensure_topic(self.stopping)
            self.publisher = outbox.Publisher(producer, settings.SAGA_TOPIC, self.io_thread, ring=self.ringer.ring,
                                              linger_ms=settings.SAGA_PUBLISH_LINGER_MS)
            outbox.install(self.publisher)
            self.relay = outbox.Relay(self.service.name, producer, settings.SAGA_TOPIC, settings.SAGA_OUTBOX_POLL_MS / 1000,
                                      self.io_thread, on_failure=self.recover_topic, ring=self.ringer.ring)
            self.consumer = broker.consumer(f"sagaboard.{self.service.name}", subscribe=False)
            if not await broker.start_with_retry(self.consumer, "consumer", self.stopping):
                return
            self.broker_epoch = broker.epoch()
            self.membership = Membership(self, self.service.name, outbox.process_name())
            publishing = self.watch(asyncio.create_task(self.publisher.run(self.stopping), name="publisher"))
            tasks = [
                self.watch(asyncio.create_task(self.relay.run(self.stopping), name="relay")),
                self.watch(asyncio.create_task(self.membership.run(), name="membership")),  # also claims the partitions
            ]
            try:
                log.info("%s started: topic %s, group sagaboard.%s", self.service.name, settings.SAGA_TOPIC, self.service.name)
                tasks += [self.watch(asyncio.create_task(fn(self), name=fn.__name__)) for fn in self.service.background]
                batching = self.watch(asyncio.create_task(self.batch_loop(), name="batches"))
                await self.fetch_loop()
                self.stop_steps.lap("fetch")
                try:  # the batch under way rolls back at its next delivery (apply_batch), or ends
                    await asyncio.wait_for(batching, 10)
                except TimeoutError:
                    log.warning("%s: a batch was still running at stop; its records are redelivered", self.service.name)
                except Exception:
                    pass  # the batch loop died: watch() said so and stopped the runtime
                self.stop_steps.lap("batch")
            finally:
                self.stopping.set()
                for task in self.befores:
                    task.cancel()
                await self.commit_offsets()
                self.stop_steps.lap("commit")
                await asyncio.gather(*tasks, return_exceptions=True)
                self.stop_steps.lap("tasks")
                await asyncio.gather(publishing, return_exceptions=True)
                self.stop_steps.lap("publisher")
                await self.membership.leave()  # its peers take the partitions at once
                self.stop_steps.lap("leave")
                await self.consumer.stop()
                self.stop_steps.lap("consumer")
        finally:
            outbox.install(None)
            self.parking.close()
            await producer.stop()
            self.stop_steps.lap("producer")
            self.db_thread.shutdown(wait=False, cancel_futures=True)
            self.io_thread.shutdown(wait=True)
            self.stop_steps.lap("threads")
            log.info("%s stopped%s", self.service.name, self.stop_steps)

    def watch(self, task: asyncio.Task) -> asyncio.Task:
        """A part of the runtime that dies of an exception (a bug) stops the whole process, which
        then exits non-zero (runservice: EXIT_SOFTWARE), so supervisord restarts it and the
        service panel shows it: never a process that fetches and beats while nothing is applied."""

        def done(t: asyncio.Task) -> None:
            if t.cancelled() or t.exception() is None or self.failure is not None:
                return
            self.failure = t.exception()
            log.critical("%s: its %s died (%r); stopping so that the supervisor starts it again", self.service.name,
                         t.get_name(), self.failure, exc_info=self.failure)
            self.stop()

        task.add_done_callback(done)
        return task

    def stop(self) -> None:
        log.info("%s stopping", self.service.name)
        self.stop_steps.start()
        faults.shutting_down.set()
        self.stopping.set()
        self.work.set()
        self.room.set()

    # --- records in ----------------------------------------------------------------------------------
    async def fetch_loop(self) -> None:
        while not self.stopping.is_set():
            if self.in_flight >= MAX_IN_FLIGHT:
                self.room.clear()
                await self.room.wait()
                continue
            if self.lost_logs:
                await self.read_lost_logs()
            batches = await self.parking.fetch(self.consumer, self.stopping)
            if self.broker_restarted():
                continue  # what it fetched came from the old positions: read again from offset 0
            if batches:
                self.ingest(batches)

    def ingest(self, batches) -> None:
        """Parse each record once, note its offset, and put it in its lane (or finish it now)."""
        skips, lanes, offsets = self.service.skips, self.lanes, self.offsets
        received_ms = int(time.time() * 1000)
        added = finished = False
        for tp, records in batches.items():
            for record in records:
                if not offsets.received(tp, record.offset):
                    log.warning("%s: %s restarted at offset %s", self.service.name, tp, record.offset)
                kind = next((v for k, v in record.headers or () if k == "type"), None)
                delivery = None if skips(kind) else self.deliver(tp, record, received_ms)
                if delivery is None:
                    offsets.finished(tp, record.offset)
                    self.handled += 1
                    finished = True
                    continue
                lanes.add(delivery)
                self.in_flight += 1
                added = True
        if added or finished:  # records finished here are committed by the batch loop too
            self.work.set()

    def broker_restarted(self) -> bool:
        """True when the embedded broker started again since the last look (broker.epoch): its
        log began anew at offset 0 and the group's committed offsets are gone, while this consumer
        still fetches from where it got to in the old log. Tansu 0.6.0 answers a fetch beyond a
        partition's end with nothing (no OFFSET_OUT_OF_RANGE), then, once the new log grows past
        that position, with the records from there: the first ones would be skipped, and read
        later, out of order, when the committed offsets were found gone. So every assigned
        partition is read again from offset 0, and the records in hand (fetched at the old
        positions) are dropped: the new log has them at offset 0 onwards. A record of the new log
        exists only after runbroker wrote the new epoch, so none is taken before this look (the
        fetch loop looks after every fetch, also an empty one: a position beyond the new log's
        end gets nothing at all)."""
        epoch = broker.epoch()
        if epoch == self.broker_epoch:
            return False
        self.broker_epoch = epoch
        for tp in self.consumer.assignment():
            log.warning("%s: the broker started again; reading %s from offset 0", self.service.name, tp)
            self.offsets.read_again(tp)
            self.consumer.seek(tp, 0)
        self.partitions_changed()  # fetch at once
        return True

    async def read_lost_logs(self) -> None:
        """Read again from their beginning the partitions whose committed offsets the broker lost
        (Membership.notice_a_lost_log). Every seek is made here, between two fetches, so that the
        next fetch's first record is checked for a gap (sagaboard/kernel/gaps.py): a seek during a
        fetch could bring records from the new position that nothing can check."""
        tps, self.lost_logs = self.lost_logs & self.consumer.assignment(), set()
        for tp in tps:
            self.offsets.read_again(tp)
        if tps:
            await self.consumer.seek_to_beginning(*tps)

    def deliver(self, tp, record, received_ms: int) -> Delivery | None:
        """The delivery of a record taken at `received_ms` (ms since the epoch), or None when it is
        none of this service's business."""
        try:
            event = Event.from_bytes(record.value, settings.SAGA_MAX_EVENT_BYTES)
        except InvalidEvent as exc:
            return Delivery(tp, record, error=str(exc))  # dead-lettered by the next batch
        handler = self.service.handlers.get(event.eventType)
        if handler is None and not self.service.records_everything:
            return None
        return Delivery(tp, record, event=event, handler=handler, received_at_ms=received_ms)

    def forget_partition(self, tp) -> None:
        """The partition went to a peer: drop its records not yet applied (the peer reads them)."""
        dropped = self.lanes.drop_partition(lambda d: d.tp == tp)
        self.in_flight -= dropped
        self.room.set()

    def partitions_changed(self) -> None:
        self.parking.changed.set()
        self.parking.hot = True

    # --- batches -------------------------------------------------------------------------------------
    async def batch_loop(self) -> None:
        while not self.stopping.is_set():
            self.start_befores()
            if self.befores:
                await asyncio.sleep(0)  # a `before` that does not wait (most orders) finishes now
            batch = self.lanes.take(BATCH_LIMIT)
            if not batch:
                self.work.clear()
                uncommitted = bool(self.offsets.to_commit(self.consumer.assignment()))
                try:  # with something to commit, wait a little; else until there is work
                    await asyncio.wait_for(self.work.wait(), COMMIT_EVERY_SECONDS if uncommitted else None)
                except TimeoutError:
                    await self.commit_offsets()  # nothing to do for a while: commit what is finished
                continue
            await self.apply(batch)
            if time.monotonic() - self.committed_at >= COMMIT_EVERY_SECONDS:
                await self.commit_offsets()

    def start_befores(self) -> None:
        """Run the `before` step of each lane's front delivery that needs one; its lane is held."""
        for delivery in self.lanes.waiting():
            self.lanes.hold(delivery.key)
            task = asyncio.create_task(self.run_before(delivery))
            self.befores.add(task)
            task.add_done_callback(self.befores.discard)

    async def run_before(self, delivery: Delivery) -> None:
        try:
            delivery.outcome = await delivery.handler.before(delivery.event)
        except faults.ShuttingDown:
            return  # the lane stays held; the record is redelivered after the restart
        except Exception:
            log.exception("%s: the before step of %s failed; the handler decides", self.service.name, delivery.event.eventType)
        delivery.before_done = True
        self.lanes.release(delivery.key)
        self.work.set()

    async def apply(self, batch: list[Delivery]) -> None:
        attempt = 0
        while True:
            attempt += 1
            try:
                result = await self.in_db_thread(self.service.apply_batch, batch)
                break
            except (OperationalError, InterfaceError) as exc:  # locked or gone: the whole batch again
                if self.stopping.is_set():
                    return
                await self.in_db_thread(close_old_connections)
                log.warning("%s database error, retrying a batch of %s: %s", self.service.name, len(batch), exc)
                await asyncio.sleep(min(0.1 * attempt, 2.0))
            except faults.ShuttingDown:
                return  # rolled back at the stop (apply_batch): the batch is redelivered after the restart
            except RuntimeError:
                if self.stopping.is_set():
                    return  # the database thread was shut down: the batch is redelivered later
                raise
        faults.crash_point("handler_after_commit")
        if result.emitted:
            self.publisher.submit(self.service.name, result.emitted)
        for delivery, outcome in result.not_applied:
            log.info("%s %s %s of order %s: %s", self.service.name, outcome.kind, delivery.event.eventType,
                     delivery.event.orderId, outcome.reason)
        for delivery in result.finished:
            self.offsets.finished(delivery.tp, delivery.record.offset)
        self.handled += len(result.finished)
        self.in_flight -= len(result.finished)
        self.room.set()
        if result.failed:
            self.retry(result.failed, result.deferred)

    def retry(self, failed: list[Delivery], deferred: list[Delivery]) -> None:
        """Failed deliveries go back first in their lanes, which wait a little before trying again
        (the last attempt dead-letters the event: batch.MAX_ATTEMPTS)."""
        for delivery in failed:
            delivery.attempts += 1
            log.error("%s handler failed (attempt %s) on %s of order %s:\n%s", self.service.name, delivery.attempts,
                      delivery.event.eventType, delivery.event.orderId, delivery.last_error)
        self.lanes.put_back(failed + deferred)
        loop = asyncio.get_running_loop()
        for delivery in failed:
            self.lanes.hold(delivery.key)
            loop.call_later(0.05 * delivery.attempts, self._release, delivery.key)

    def _release(self, key) -> None:
        self.lanes.release(key)
        self.work.set()

    # --- offsets -------------------------------------------------------------------------------------
    async def commit_offsets(self) -> None:
        offsets = self.offsets.to_commit(self.consumer.assignment())
        if not offsets:
            return
        self.committed_at = time.monotonic()
        try:
            # aiokafka retries a commit on an unknown topic forever: bound it
            await asyncio.wait_for(self.consumer.commit(offsets), COMMIT_TIMEOUT_SECONDS)
            self.offsets.committed(offsets)
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

