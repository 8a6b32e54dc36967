"""The live feed of the web process: Kafka → Channels groups → WebSocket clients.

One feed per web process (Daphne runs one), started lazily by the first WebSocket client. It
reads the saga topic with a consumer of no group (every partition, from the end, nothing
committed) and forwards each record to the Channels groups `sagas` (every event) and
`saga-<orderId>` (one order), as a message of the format documented in the README:

    {"kind": "event", "event": <the envelope, unchanged>, "topic": …, "partition": …,
     "offset": …, "publishedAt": <broker timestamp, ms>, "receivedAt": <ms>}

Beside it, while anyone watches, it pushes the service panel every SAGA_DASHBOARD_STATUS_SECONDS
and the checker's anomalies every SAGA_DASHBOARD_CONSISTENCY_SECONDS to the group `sagas`
({"kind": "services", …} and {"kind": "consistency", …}). The broker not being up yet, or
restarting, is retried with a bounded backoff; the feed stops when the web server shuts down.
"""
from __future__ import annotations

import asyncio
import json
import logging
import sys

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from asgiref.sync import sync_to_async
from channels.layers import get_channel_layer
from django.conf import settings

from sagaboard.kernel import broker, doorbell
from sagaboard.kernel.events import now_ms

from . import snapshot

log = logging.getLogger(__name__)
ALL = "sagas"
MAX_BACKOFF_SECONDS = 5.0
LAG_TIMEOUT_SECONDS = 2.0
REWIND_CHECK_SECONDS = 0.5


def order_group(order_id) -> str:
    return f"saga-{order_id}"


def message_of(record) -> dict | None:
    """The WebSocket message for one Kafka record, or None when the value is not an event
    envelope at all (the services dead-letter those; the feed just skips them). Unknown event
    types pass through unchanged: the pages draw them generically."""
    try:
        envelope = json.loads(record.value)
    except (TypeError, ValueError):
        return None
    if not isinstance(envelope, dict) or not isinstance(envelope.get("eventId"), str):
        return None
    return {
        "kind": "event",
        "event": envelope,
        "topic": record.topic,
        "partition": record.partition,
        "offset": record.offset,
        "publishedAt": record.timestamp,
        "receivedAt": now_ms(),
    }


class Feed:
    def __init__(self):
        self.task: asyncio.Task | None = None
        self.status_task: asyncio.Task | None = None
        self.stopping = asyncio.Event()
        self.watchers = 0
        self.consumer = None
        self.admin: AIOKafkaAdminClient | None = None
        self.ready = asyncio.Event()  # set while the consumer reads from known positions
        self.lag_lock = asyncio.Lock()  # the status task and the panel's JSON view share one admin client
        self.hooked = False

    def ensure_started(self) -> None:
        """Start the feed in the running event loop (the server's) if it is not running yet."""
        if self.task is None or self.task.done():
            self.stopping = asyncio.Event()
            self.task = asyncio.create_task(self.run(), name="dashboard-feed")
            self.status_task = asyncio.create_task(self.push_status(), name="dashboard-status")
        self.stop_with_server()

    def stop_with_server(self) -> None:
        """Daphne runs on Twisted's asyncio reactor: stop the feed before it shuts down (SIGTERM)."""
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is None or self.hooked:
            return
        from twisted.internet.defer import Deferred

        reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(self.stop())))
        self.hooked = True

    async def stop(self) -> None:
        self.stopping.set()
        for task in (self.task, self.status_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def sleep(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self.stopping.wait(), seconds)
        except TimeoutError:
            pass

    # --- events --------------------------------------------------------------------------------
    async def run(self) -> None:
        backoff = 0.2
        while not self.stopping.is_set():
            started = asyncio.get_running_loop().time()
            try:
                await self.forward()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the broker went away or lost the topic: start over
                log.warning("dashboard feed lost the broker (%r); retrying in %.1f s", exc, backoff)
            if asyncio.get_running_loop().time() - started > 10:
                backoff = 0.2  # it ran well for a while: this is a new failure
            await self.sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_SECONDS)

    async def forward(self) -> None:
        if not await broker.verify_broker(self.stopping):  # ForeignBroker: retried with a backoff by run()
            return
        consumer = broker.consumer(None, auto_offset_reset="earliest")
        if not await broker.start_with_retry(consumer, "dashboard feed", self.stopping):
            return
        self.consumer = consumer
        layer = get_channel_layer()
        parking = doorbell.parking("web-feed")  # it fetches when a publisher rings, like the services
        parking.open()
        try:
            await self.position(consumer)
            self.ready.set()
            log.info("dashboard feed reading %s from its end", settings.SAGA_TOPIC)
            checked, seen = 0.0, {"epoch": broker.epoch()}
            while not self.stopping.is_set():
                now = asyncio.get_running_loop().time()
                if now - checked >= REWIND_CHECK_SECONDS:
                    checked = now
                    await self.follow_a_new_log(consumer, seen)
                batches = await parking.fetch(consumer, self.stopping, max_records=500)
                for records in batches.values():
                    for record in records:
                        message = message_of(record)
                        if message is None:
                            continue
                        payload = {"type": "saga.message", "message": message}
                        await layer.group_send(ALL, payload)
                        order_id = message["event"].get("orderId")
                        if isinstance(order_id, int):
                            await layer.group_send(order_group(order_id), payload)
        finally:
            parking.close()
            self.ready.clear()
            self.consumer = None
            await consumer.stop()

    async def position(self, consumer) -> None:
        """Wait until the consumer has every partition and knows where it reads from (the end):
        from then on no event is missed, so a client that reads history after `hello` has all."""
        for _ in range(100):  # bounded: 10 s for the topic to exist and be assigned
            if consumer.assignment():
                break
            await self.sleep(0.1)
        else:
            raise RuntimeError(f"no partition of {settings.SAGA_TOPIC} assigned")
        # aiokafka first gives a new partition its position (auto_offset_reset: the beginning); a
        # seek to the end made before that was overridden by it (measured: position 0 after
        # seek_to_end, 3 of 3 runs), and every start of a web process pushed the topic's whole
        # history to every socket. So: its first positions, then the end.
        await self.positions_known(consumer)
        await consumer.seek_to_end(*consumer.assignment())
        await self.positions_known(consumer)

    @staticmethod
    async def positions_known(consumer) -> None:
        """Wait until every assigned partition's position is known (aiokafka resets each one
        after an assignment or a seek to an end)."""
        await asyncio.gather(*(consumer.position(tp) for tp in consumer.assignment()))

    async def follow_a_new_log(self, consumer, seen: dict) -> None:
        """The embedded broker keeps nothing across a restart: the topic comes back empty and its
        offsets start again from 0, below where the feed reads. Read every partition from its new
        beginning then, so nothing published since the restart is missed. A restart is known by
        the broker's epoch (runbroker writes a new one at each start: kernel/broker.py), or, on
        any broker, by a partition's end offset falling below one seen before (a log's end never
        decreases). Not by the feed's position being past the end: the embedded Tansu 0.6.0
        reports a partition's end as one past the first record of its last batch, short of the
        true end after a batch of several records, and reading such a partition again every few
        seconds sent every socket its history over and over (a hostile try found it)."""
        assignment = consumer.assignment()
        if not assignment:
            return
        epoch = broker.epoch()
        if epoch is not None and epoch != seen.get("epoch"):
            log.warning("dashboard feed: the broker restarted (a new log); reading every partition from the start")
            seen.clear()
            seen["epoch"] = epoch
            for tp in assignment:
                await consumer.seek_to_beginning(tp)
            return
        try:
            ends = await asyncio.wait_for(consumer.end_offsets(list(assignment)), LAG_TIMEOUT_SECONDS)
        except (TimeoutError, KafkaError):
            return  # the broker is away: aiokafka reconnects by itself, look again later
        for tp in assignment:
            highest = seen.get(tp, ends[tp])
            if ends[tp] < highest:
                log.warning("dashboard feed: %s went back to offset %s (broker restarted); reading it from the start", tp, ends[tp])
                await consumer.seek_to_beginning(tp)
            seen[tp] = ends[tp] if ends[tp] < highest else max(highest, ends[tp])

    async def wait_ready(self, timeout: float) -> bool:
        """True once the feed reads from known positions; False after `timeout` (broker down)."""
        try:
            await asyncio.wait_for(self.ready.wait(), timeout)
            return True
        except TimeoutError:
            return False

    # --- service panel and anomalies -------------------------------------------------------------
    async def push_status(self) -> None:
        layer = get_channel_layer()
        last_check = 0.0
        try:
            while not self.stopping.is_set():
                if self.watchers > 0:
                    lag = await self.current_lag()
                    services = await sync_to_async(snapshot.services, thread_sensitive=False)(lag)
                    await layer.group_send(ALL, {"type": "saga.message", "message": {"kind": "services", "services": services}})
                    now = asyncio.get_running_loop().time()
                    if now - last_check >= settings.SAGA_DASHBOARD_CONSISTENCY_SECONDS:
                        last_check = now
                        verdict = await sync_to_async(snapshot.consistency, thread_sensitive=False)()
                        await layer.group_send(ALL, {"type": "saga.message", "message": {"kind": "consistency", **verdict}})
                await self.sleep(settings.SAGA_DASHBOARD_STATUS_SECONDS)
        finally:
            if self.admin is not None:
                await asyncio.gather(self.admin.close(), return_exceptions=True)
                self.admin = None

    async def current_lag(self) -> dict[str, int | None]:
        """Each service's lag from committed offsets; {} while the broker cannot tell (then the
        panel shows what the services' live processes report)."""
        async with self.lag_lock:
            return await self._lag()

    async def _lag(self) -> dict[str, int | None]:
        try:
            if self.admin is None:
                self.admin = AIOKafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS, request_timeout_ms=2000)
                await asyncio.wait_for(self.admin.start(), LAG_TIMEOUT_SECONDS)
            return await asyncio.wait_for(self.group_lag(self.admin), LAG_TIMEOUT_SECONDS)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.info("dashboard: consumer lag unavailable (%r)", exc)
            if self.admin is not None:
                await asyncio.gather(self.admin.close(), return_exceptions=True)
            self.admin = None
            return {}

    async def group_lag(self, admin) -> dict[str, int | None]:
        """Per service: the topic's end offsets minus its consumer group's committed offsets
        (what a stopped service still has to read), None when the group has committed nothing.
        On the embedded Tansu the end offset can be short by the tail of a partition's last batch
        (see follow_a_new_log), hence the floor at 0."""
        consumer = self.consumer
        if consumer is None:
            return {}
        partitions = [TopicPartition(settings.SAGA_TOPIC, p) for p in (consumer.partitions_for_topic(settings.SAGA_TOPIC) or ())]
        if not partitions:
            return {}
        ends = await consumer.end_offsets(partitions)
        lag = {}
        for service in settings.SERVICES:
            committed = await admin.list_consumer_group_offsets(f"sagaboard.{service}", partitions=partitions)
            known = {tp: meta.offset for tp, meta in committed.items() if meta is not None and meta.offset >= 0}
            lag[service] = sum(max(0, ends[tp] - known.get(tp, 0)) for tp in partitions) if known else None
        return lag


feed = Feed()
