"""Transactional outbox: write an event with the state change, publish it after the commit.

`emit()` only inserts a row in the caller's transaction, so nothing can leave before that
transaction commits. The relay reads committed rows in id order, publishes them, waits for the
broker's acknowledgement and only then marks them published: a crash in between publishes them
again on restart (duplicates are harmless, the inboxes drop them); nothing is lost.
"""
from __future__ import annotations

import asyncio
import logging
import os
import socket
import time

from django.utils import timezone

from . import faults, leases
from .events import Event
from .models import OutboxMessage

log = logging.getLogger(__name__)

LEASE_SECONDS = 3.0
BATCH = 500


def emit(using: str, event: Event) -> Event:
    """Queue `event` for publication; call inside the transaction that makes it true."""
    OutboxMessage.objects.using(using).create(
        event_id=event.eventId,
        event_type=event.eventType,
        order_id=event.orderId,
        key=event.key.decode(),
        body=event.to_bytes(),
    )
    return event


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Relay:
    """Publishes one database's outbox. Several processes may run one; a lease picks the publisher."""

    def __init__(self, using: str, producer, topic: str, poll_seconds: float, executor, on_failure=None):
        self.using = using
        self.producer = producer
        self.topic = topic
        self.poll_seconds = poll_seconds
        self.executor = executor
        self.holder = process_name()
        self.lease_until = 0.0
        self.wake = asyncio.Event()
        self.published = 0
        self.on_failure = on_failure

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

    def _pending(self) -> list[OutboxMessage]:
        if not self._hold_lease():
            return []
        return list(
            OutboxMessage.objects.using(self.using)
            .filter(published_at__isnull=True)
            .order_by("id")
            .only("id", "event_type", "key", "body")[:BATCH]
        )

    def _mark_published(self, rows: list[OutboxMessage]) -> None:
        stamp = timezone.now()
        for row in rows:
            row.published_at = stamp
        OutboxMessage.objects.using(self.using).bulk_update(rows, ["published_at", "partition", "offset"])

    def release(self) -> None:
        leases.release(self.using, self.holder, ["relay"])

    # --- broker side ------------------------------------------------------------------------------
    async def publish_pending(self) -> int:
        loop = asyncio.get_running_loop()
        total = 0
        while True:
            rows = await loop.run_in_executor(self.executor, self._pending)
            if not rows:
                return total
            faults.crash_point("relay_before_publish")
            first_acks, sends = [], []
            for row in rows:
                headers = [("type", row.event_type.encode())]
                for _ in range(2 if faults.duplicate() else 1):
                    sends.append(await self.producer.send(self.topic, value=bytes(row.body), key=row.key.encode(), headers=headers))
                first_acks.append(sends[-1])
            await asyncio.gather(*sends)
            for row, ack in zip(rows, first_acks):
                meta = ack.result()
                row.partition, row.offset = meta.partition, meta.offset
            faults.crash_point("relay_after_publish")
            await loop.run_in_executor(self.executor, self._mark_published, rows)
            self.published += len(rows)
            total += len(rows)
            if len(rows) < BATCH:
                return total

    async def run(self, stopping: asyncio.Event) -> None:
        while not stopping.is_set():
            try:
                await asyncio.wait_for(self.wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass
            self.wake.clear()
            try:
                await self.publish_pending()
            except Exception as exc:  # broker or database hiccup: keep the rows, try again shortly
                log.warning("outbox relay of %s failed, retrying: %r", self.using, exc)
                if self.on_failure is not None:
                    await self.on_failure()
                await asyncio.sleep(0.5)
        await asyncio.get_running_loop().run_in_executor(self.executor, self.release)
