"""How the embedded broker's fetch slows as a partition's log grows (`make bench-tansu`).

Tansu 0.6.0 with its memory storage reads a fetch by going through the partition's batches, so
the time and CPU of a fetch at the log's end grow with the number of batches in the partition.
This starts its own Tansu on a free port, appends single-record batches (one produce request
each, as a lone order's events are) to one partition, and at each size times ten fetches of the
last record (a consumer with a long fetch wait, so that every answer carries it), with the
broker's CPU per fetch from /proc. It also counts, out of ten looks with the services' default
fetch wait (SAGA_KAFKA_FETCH_MAX_WAIT_MS, 5 ms), how many came back with nothing: the answer of a
fetch whose wait ran out before the read (sagaboard/kernel/doorbell.py, Parking.adapt_wait).

Usage: python bench/tansu_scan.py [--sizes 1000,5000,10000,20000,30000]
"""
from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from sagaboard.kernel.broker import tansu_command  # noqa: E402

TOPIC = "scan"
SERVICES_FETCH_WAIT_MS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def measure(bootstrap: str, broker_pid: int, sizes: list[int]) -> list[tuple[int, float, float, float, int]]:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=0)
    patient = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False, fetch_max_wait_ms=1000)
    hasty = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                             fetch_max_wait_ms=SERVICES_FETCH_WAIT_MS)
    tp = TopicPartition(TOPIC, 0)
    rows = []
    try:
        await admin.start()
        await admin.create_topics([NewTopic(TOPIC, 1, 1)])
        await producer.start()
        for consumer in (patient, hasty):
            await consumer.start()
            consumer.assign([tp])
        batches = 0
        for size in sizes:
            while batches < size:
                await producer.send_and_wait(TOPIC, b"x" * 250, partition=0)
                batches += 1
            patient.seek(tp, batches - 1)
            await patient.getmany(timeout_ms=5000)  # warm: the first fetch also opens a connection
            times, before = [], cpu_seconds(broker_pid)
            for _ in range(10):
                patient.seek(tp, batches - 1)
                started = time.perf_counter()
                await patient.getmany(timeout_ms=5000)
                times.append((time.perf_counter() - started) * 1000)
            cpu_ms = (cpu_seconds(broker_pid) - before) * 100  # per fetch: ten fetches
            empty = 0
            for _ in range(10):
                hasty.seek(tp, batches - 1)
                records = await hasty.getmany(timeout_ms=4 * SERVICES_FETCH_WAIT_MS + 5)
                empty += not records
            rows.append((size, statistics.median(times), max(times), cpu_ms, empty))
            print(f"  {size:,} batches: done", flush=True)
    finally:
        for client in (patient, hasty, producer):
            await client.stop()
        await admin.close()
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="1000,5000,10000,20000,30000", help="batches in the partition at each step")
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(",") if s.strip())
    port = free_port()
    broker = subprocess.Popen(tansu_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            time.sleep(0.05)
        rows = asyncio.run(measure(f"127.0.0.1:{port}", broker.pid, sizes))
    except KeyboardInterrupt:
        return 130
    finally:
        broker.terminate()
        broker.wait(10)
    print(f"\n{'batches in the partition':>24}  {'fetch of the last record p50 / max':>36}  {'broker CPU per fetch':>20}"
          f"  {'empty looks at a 5 ms wait':>26}")
    for size, p50, worst, cpu_ms, empty in rows:
        fetch = f"{p50:.1f} / {worst:.1f} ms"
        print(f"{size:>24,}  {fetch:>36}  {cpu_ms:>17.1f} ms  {empty:>20} of 10")
    return 0


if __name__ == "__main__":
    sys.exit(main())
