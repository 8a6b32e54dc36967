"""The web process's publisher: what a request commits (OrderCreated of POST /orders,
PointsGranted, the corrections) is published right after the commit, from this process
(sagaboard/kernel/outbox.py), instead of waiting for a service's relay to find it.

It starts with the first HTTP request, on the server's event loop, and stops before Daphne shuts
down, publishing what it holds first (a few seconds at most). Rows it could not publish (the
broker is away, or the process died) are published by the owning service's relay
SAGA_OUTBOX_POLL_MS after they were written.
"""
from __future__ import annotations

import asyncio
import logging
import sys
from concurrent.futures import ThreadPoolExecutor

from django.conf import settings
from django.db import connections

from sagaboard.kernel import broker, doorbell, outbox

log = logging.getLogger(__name__)


class WebPublisher:
    def __init__(self):
        self.task: asyncio.Task | None = None
        self.stopping = asyncio.Event()
        self.hooked = False

    def ensure_started(self) -> None:
        """Start in the running event loop (the server's) if not running yet. The publisher takes
        rows at once, before its producer has connected: the request that starts it commits its
        rows in a worker thread meanwhile, and without it they waited for the relay (seconds:
        the first order after a web restart was rejected by its deadline in CI)."""
        if self.task is None or self.task.done():
            self.stopping = asyncio.Event()
            ringer = doorbell.ringer()
            publisher = outbox.Publisher(broker.producer(), settings.SAGA_TOPIC,
                                         ThreadPoolExecutor(1, thread_name_prefix="web-outbox"), ring=ringer.ring,
                                         linger_ms=settings.SAGA_PUBLISH_LINGER_MS)
            publisher.accept(asyncio.get_running_loop())
            outbox.install(publisher)
            self.task = asyncio.create_task(self.run(publisher, ringer), name="web-publisher")
            self.stop_with_server()

    def stop_with_server(self) -> None:
        """Daphne runs on Twisted's asyncio reactor: stop before it shuts down (SIGTERM)."""
        reactor = sys.modules.get("twisted.internet.reactor")
        if reactor is None or self.hooked:
            return
        from twisted.internet.defer import Deferred

        reactor.addSystemEventTrigger("before", "shutdown", lambda: Deferred.fromFuture(asyncio.ensure_future(self.stop())))
        self.hooked = True

    async def stop(self) -> None:
        self.stopping.set()
        if self.task is not None:
            await asyncio.gather(self.task, return_exceptions=True)

    async def run(self, publisher: outbox.Publisher, ringer: doorbell.Ringer) -> None:
        """Connect `publisher`'s producer and publish until stopped. If the broker is not this
        instance's, or the process stops first, the rows it took stay unpublished in the outboxes
        for the relays."""
        producer, started = publisher.producer, False
        try:
            if not await broker.verify_broker(self.stopping):
                return
            started = await broker.start_with_retry(producer, "web publisher", self.stopping)
            if started:
                await publisher.run(self.stopping)
        except broker.ForeignBroker as exc:  # the rows stay in the outboxes: nothing goes to another instance
            log.critical("web publisher: %s", exc)
        finally:
            outbox.install(None)
            publisher.accept(None)
            if started:
                await producer.stop()
            publisher.executor.submit(connections.close_all).result()
            publisher.executor.shutdown()
            ringer.close()


web_publisher = WebPublisher()
