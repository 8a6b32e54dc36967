"""Deadline precision: arm N deadlines through the real deadline service and measure how late
each DeadlineReached fires. Prints p50/p99/max, beside the raw limit of the same machine in the
same run (N bare asyncio timers due at the same moments, no database, no Kafka).

    python bench/deadline_lateness.py [--deadlines 1000] [--spread 3.0]

It starts its own broker and one deadline service process (SQLite in a temporary directory, or
PostgreSQL when DATABASE_URL is set), on 127.0.0.1, and stops both when done.
"""
import argparse
import asyncio
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sagaboard.settings")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def summary(name, lateness):
    return (f"{name:<38} p50 {statistics.median(lateness):7.2f} ms   p99 {pct(lateness, 99):7.2f} ms   "
            f"max {max(lateness):7.2f} ms   (n={len(lateness)})")


async def bare_timers(due_ms):
    """The raw limit: one asyncio timer per deadline, lateness of the wake-up itself."""
    lateness = []

    async def one(due):
        await asyncio.sleep(max(0, (due - time.time() * 1000) / 1000))
        lateness.append(time.time() * 1000 - due)

    await asyncio.gather(*(one(d) for d in due_ms))
    return lateness


async def through_the_service(address, topic, due_ms, timeout, data_dir):
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

    from sagaboard.kernel.doorbell import Ringer, directory

    producer = AIOKafkaProducer(bootstrap_servers=address, acks="all")
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=address, group_id=f"bench-{uuid.uuid4().hex[:6]}",
                                auto_offset_reset="earliest", fetch_max_wait_ms=10,
                                session_timeout_ms=2000, heartbeat_interval_ms=300)
    await producer.start()
    await consumer.start()
    for order_id, due in enumerate(due_ms, start=1):
        event = {"eventId": str(uuid.uuid4()), "eventType": "OrderCreated", "orderId": order_id,
                 "timestamp": int(time.time() * 1000), "deadline": due, "causationId": None, "source": "bench",
                 "policy": "safe", "payload": {"holderId": "bench", "currencyId": "1", "amount": 1}}
        await producer.send(topic, json.dumps(event).encode(), key=str(order_id).encode(), headers=[("type", b"OrderCreated")])
    await producer.flush()
    ringer = Ringer(directory(Path(data_dir)))  # the deadline service fetches when rung, as by Sagaboard's publishers
    ringer.ring()
    ringer.close()
    fired, received = {}, {}
    end = time.monotonic() + timeout
    while len(fired) < len(due_ms) and time.monotonic() < end:
        for records in (await consumer.getmany(timeout_ms=100)).values():
            now = time.time() * 1000
            for r in records:
                event = json.loads(r.value)
                if event["eventType"] == "DeadlineReached" and event["orderId"] not in fired:
                    fired[event["orderId"]] = event["timestamp"] - event["deadline"]
                    received[event["orderId"]] = now - event["deadline"]
    await consumer.stop()
    await producer.stop()
    return list(fired.values()), list(received.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--deadlines", type=int, default=1000)
    parser.add_argument("--spread", type=float, default=3.0, help="seconds over which the deadlines fall due")
    parser.add_argument("--lead", type=float, default=3.0, help="seconds before the first deadline is due")
    args = parser.parse_args()

    tmp = tempfile.mkdtemp(prefix="sagaboard-bench-")
    port = free_port()
    env = {**os.environ, "SAGA_DATA_DIR": tmp, "SAGA_BROKER_PORT": str(port),
           "SAGA_PROCESS_NAME": "deadline", "SAGA_LOG_LEVEL": "WARNING"}
    if env.get("DATABASE_URL"):
        env["DATABASE_URL"] = env["DATABASE_URL"].rsplit("/", 1)[0] + f"/bench_{uuid.uuid4().hex[:8]}"
    env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
    # the instance's own broker (its cluster id is the data directory's, which the service checks)
    broker = subprocess.Popen([sys.executable, "manage.py", "runbroker"], cwd=ROOT, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    service = None
    try:
        subprocess.run([sys.executable, "manage.py", "setupdb"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL)
        service = subprocess.Popen([sys.executable, "manage.py", "runservice", "deadline"], cwd=ROOT, env=env)
        time.sleep(args.lead)  # let it join its group before the first deadline is armed
        start = time.time() * 1000 + args.lead * 1000
        due = [int(start + random.random() * args.spread * 1000) for _ in range(args.deadlines)]
        fired, received = asyncio.run(through_the_service(f"127.0.0.1:{port}", "choreography.deadline", due, args.lead + args.spread + 30, tmp))
        start = time.time() * 1000 + 500
        bare = asyncio.run(bare_timers([int(start + random.random() * args.spread * 1000) for _ in range(args.deadlines)]))
    finally:
        if service:
            service.send_signal(signal.SIGTERM)
            service.wait(30)
        broker.terminate()
        broker.wait(10)
        if env.get("DATABASE_URL"):
            from tests.system import drop_postgres_databases

            drop_postgres_databases(env["DATABASE_URL"].rsplit("/", 1)[1])
    print(f"{args.deadlines} deadlines due over {args.spread:.1f} s; database: {'PostgreSQL' if env.get('DATABASE_URL') else 'SQLite'}")
    print(summary("raw limit: bare asyncio timers", bare))
    print(summary("deadline service: DeadlineReached fired", fired))
    print(summary("  ... and received from Kafka", received))
    if len(fired) < args.deadlines:
        print(f"MISSING: only {len(fired)} of {args.deadlines} deadlines fired")
        sys.exit(1)
    print(f"ratio of p50 fired / raw: {statistics.median(fired) / max(statistics.median(bare), 0.001):.1f}x")


if __name__ == "__main__":
    main()
