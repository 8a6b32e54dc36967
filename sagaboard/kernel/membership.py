"""Membership and heartbeats: which partitions this process of a service consumes, and what it
tells the others and the dashboard about itself.

Every second (a third of a lease if that is shorter) it writes the process's heartbeat row (which
also counts it in for its peers' shares), renews its partition leases and takes or gives up
partitions for an equal share (sagaboard/kernel/leases.py), and every few beats checks that the
broker still has the offsets it committed (the embedded broker keeps nothing across a restart).
"""
from __future__ import annotations

import asyncio
import logging
import os
from datetime import UTC, datetime

from aiokafka import TopicPartition
from django.conf import settings
from django.utils import timezone

from . import doorbell
from .leases import PartitionLeases
from .models import ProcessHeartbeat

log = logging.getLogger(__name__)
COMMIT_TIMEOUT_SECONDS = 5.0
LOST_LOG_CHECK_EVERY = 5  # beats between checks that the broker still has our committed offsets


class Membership:
    """The heartbeat loop of one process of a service. `runtime` provides: `consumer`, `offsets`,
    `parking`, `stopping`, `handled`, `started_at`, `lost_logs`, `in_io_thread(fn)`,
    `commit_offsets()`, `partitions_changed()` and `forget_partition(tp)`."""

    def __init__(self, runtime, service: str, process: str):
        self.runtime = runtime
        self.service = service
        self.process = process
        self.leases = PartitionLeases(service, process, settings.SAGA_PARTITION_LEASE_SECONDS)
        self.beats = 0

    @property
    def interval(self) -> float:
        return min(1.0, settings.SAGA_PARTITION_LEASE_SECONDS / 3)

    async def run(self) -> None:
        r = self.runtime
        while not r.stopping.is_set():
            try:
                await r.in_io_thread(self.beat, await self.lag())
                await self.rebalance()
                if self.beats % LOST_LOG_CHECK_EVERY == 0:
                    await self.notice_a_lost_log()
                self.beats += 1
            except Exception:
                log.exception("heartbeat failed")
            try:
                await asyncio.wait_for(r.stopping.wait(), self.interval)
            except TimeoutError:
                pass

    async def leave(self) -> None:
        """At stop: give up the partitions at once (peers take them) and remove the heartbeat."""
        await self.runtime.in_io_thread(self.leases.release_all)
        await self.runtime.in_io_thread(
            lambda: ProcessHeartbeat.objects.using(self.service).filter(process=self.process).delete())

    async def lag(self) -> int:
        """Records on its partitions not yet read, from what the fetcher already knows (no request)."""
        return await doorbell.unread(self.runtime.consumer)

    def beat(self, lag: int) -> None:
        r = self.runtime
        now = timezone.now()
        since = r.parking.parked_since
        values = dict(service=self.service, pid=os.getpid(), started_at=r.started_at, seen_at=now, lag=lag,
                      handled=r.handled, assignment=sorted(tp.partition for tp in r.consumer.assignment()),
                      parked_since=datetime.fromtimestamp(since, tz=UTC) if since else None)
        beats = ProcessHeartbeat.objects.using(self.service)
        if not beats.filter(process=self.process).update(**values):
            beats.create(process=self.process, **values)

    async def rebalance(self) -> None:
        """Consume the partitions this process holds leases on."""
        r = self.runtime
        partitions = r.consumer.partitions_for_topic(settings.SAGA_TOPIC)
        if not partitions:
            await r.consumer.topics()  # not in the metadata yet (or the broker lost the topic)
            return
        keep, surplus = await r.in_io_thread(self.leases.claim, len(partitions))
        current = {tp.partition for tp in r.consumer.assignment()}
        if keep == current and not surplus:
            return
        await r.commit_offsets()  # hand over where this process got to
        kept = {TopicPartition(settings.SAGA_TOPIC, p) for p in keep}
        for tp in r.consumer.assignment() - kept:
            r.forget_partition(tp)
        r.offsets.keep_only(kept)  # assign() sends every partition back to its committed offset
        r.consumer.assign(sorted(kept, key=lambda tp: tp.partition))
        # paused until the fetch loop knows where each starts, so that a fetch under way cannot
        # take their first records unchecked (sagaboard/kernel/gaps.py)
        r.consumer.pause(*kept)
        if surplus:
            await r.in_io_thread(self.leases.release, surplus)
        log.info("%s consumes partitions %s", self.service, sorted(keep))
        r.partitions_changed()

    async def notice_a_lost_log(self) -> None:
        """A partition this process has committed on whose committed offset is gone is read again
        from its beginning. A real Kafka drops the offsets of a group idle for longer than its
        offsets.retention.minutes (7 days by default); the partition is then read again and every
        event ignored by the inbox. (The embedded broker, which keeps nothing across a restart,
        is caught sooner, before any fetch at an old position: Runtime.broker_restarted; this is
        the fallback when the epoch file cannot tell, e.g. a broker restarted by hand.)"""
        r = self.runtime
        for tp in r.consumer.assignment():
            offsets = r.offsets.partitions.get(tp)
            if offsets is None or offsets.committed <= 0:
                continue
            if await asyncio.wait_for(r.consumer.committed(tp), COMMIT_TIMEOUT_SECONDS) is None:
                log.warning("%s: the committed offset of %s is gone (broker restarted); reading it from the start",
                            self.service, tp)
                r.lost_logs.add(tp)  # the fetch loop seeks, between two fetches (Runtime.read_lost_logs)
                r.partitions_changed()  # now, not at the next ring or safety look
