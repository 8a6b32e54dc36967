"""`make bench`: Sagaboard's throughput, latency and CPU next to the raw limit of this machine.

It starts its own system the way `make run` does (`manage.py run` under supervisord: the embedded
broker, every service, Daphne) on free ports of 127.0.0.1 in a temporary directory, on SQLite or,
with DATABASE_URL set, on fresh PostgreSQL databases (dropped at the end). Then, in one run:

1. the raw limit: a three-hop chain of bare aiokafka processes on the same broker (bench/raw_chain.py);
2. POST /orders alone, in requests/s (the five services stopped meanwhile, so only the web works);
3. a burst of N orders end to end: orders/s from the first POST to the last terminal event
   (OrderPlaced or OrderRejected, read from the topic by the bench), latency p50/p99/max;
4. sustained offered rates, each for some seconds: the achieved rate and latency;
5. one order at a time: POST → terminal event p50 and p99;
6. CPU seconds of every process of the system (from /proc): per order over the burst, and per
   process over an idle stretch, as a percentage of one core.

It prints one table with each figure's ratio to the raw limit, then checks that every saga is
consistent (`GET /consistency` empty; each holder's balance equals its grant minus its APPROVED
amounts × rate) and exits 1 if not. Every phase is bounded in time; the default run takes about
5 minutes. Measured figures go into README's benchmark table; nothing here is a pass/fail on speed.

    python bench/throughput.py [--orders 5000] [--rates 100,200,400,800] [--rate-seconds 30]
                               [--replicas 1] [--partitions 3] [--idle-seconds 30] ...
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: E402

from bench.raw_chain import RawChain, percentile  # noqa: E402
from sagaboard.kernel.doorbell import Parking, directory as doorbell_directory  # noqa: E402
from sagaboard.kernel.fields import exchanged  # noqa: E402
from tests.system import System, wait_until  # noqa: E402

TERMINAL_TYPES = (b"OrderPlaced", b"OrderRejected")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
FETCH_MAX_WAIT_MS = 5  # the bench's watcher, as the services' consumers (sagaboard/settings.py)
RAW_FETCH_MAX_WAIT_MS = 10  # the raw chain: bare aiokafka, continuously fetching, as DESIGN.md measured it
MAX_IN_FLIGHT = 256  # open-loop load: POSTs outstanding at most before the offered rate slips


# --- CPU of processes, from /proc ------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """utime + stime of one process, in seconds (0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_label(pid: int) -> str:
    """web, broker, supervisord, or the service a `manage.py runservice NAME` runs."""
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return "gone"
    words = [a.decode(errors="replace") for a in argv if a]
    if "runservice" in words:
        return words[words.index("runservice") + 1]
    if any("daphne" in w for w in words):
        return "web"
    if any("tansu" in w for w in words):
        return "broker"
    if any("supervisord" in w for w in words):
        return "supervisord"
    return Path(words[0]).name if words else "?"


def cpu_by_label(pids: list[int]) -> Counter:
    totals: Counter = Counter()
    for pid in pids:
        totals[process_label(pid)] += cpu_seconds(pid)
    return totals


def total_cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


# --- the terminal events, read from the topic --------------------------------------------------------
class TerminalWatcher:
    """Reads the saga topic (no group, every partition) and notes when each order's first terminal
    event arrived (perf_counter seconds) and which it was. It fetches the way the services do: it
    has a doorbell in the system's directory, so the system's publishers wake it (and it costs the
    broker nothing while nothing happens)."""

    def __init__(self, bootstrap: str, topic: str, data_dir: Path):
        self.consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False,
                                         fetch_max_wait_ms=FETCH_MAX_WAIT_MS, auto_offset_reset="latest")
        self.parking = Parking(doorbell_directory(data_dir), "bench", True, linger_ms=5, poll_ms=1000,
                               fetch_wait_ms=FETCH_MAX_WAIT_MS)
        self.topic = topic
        self.arrived: dict[int, float] = {}
        self.status: dict[int, str] = {}
        self.changed = asyncio.Event()
        self.stopping = asyncio.Event()
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.consumer.start()
        partitions = self.consumer.partitions_for_topic(self.topic) or set()
        self.consumer.assign([TopicPartition(self.topic, p) for p in sorted(partitions)])
        await self.consumer.seek_to_end()
        self.parking.open()
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while not self.stopping.is_set():
            batches = await self.parking.fetch(self.consumer, self.stopping)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    kind = dict(record.headers or ()).get("type")
                    if kind not in TERMINAL_TYPES:
                        continue
                    event = json.loads(record.value)
                    oid = event["orderId"]
                    if oid not in self.arrived:
                        self.arrived[oid] = now
                        self.status[oid] = "APPROVED" if kind == b"OrderPlaced" else event["payload"].get("status", "REJECTED")
            if batches:
                self.changed.set()

    async def wait_for(self, order_ids, seconds: float) -> bool:
        """True once every order has its terminal event; False after `seconds`."""
        end = time.monotonic() + seconds
        missing = [oid for oid in order_ids if oid not in self.arrived]
        while missing:
            left = end - time.monotonic()
            if left <= 0:
                return False
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), min(left, 0.5))
            except TimeoutError:
                pass
            missing = [oid for oid in missing if oid not in self.arrived]
        return True

    async def stop(self) -> None:
        self.stopping.set()
        if self.task:
            await asyncio.gather(self.task, return_exceptions=True)
        self.parking.close()
        await self.consumer.stop()


# --- load ------------------------------------------------------------------------------------------
@dataclass
class Placed:
    posted: dict[int, float] = field(default_factory=dict)  # order id -> perf_counter at the POST's start
    errors: Counter = field(default_factory=Counter)
    first: float = 0.0
    last_response: float = 0.0
    unsent: int = 0  # offered but not sent: MAX_IN_FLIGHT answers were outstanding until the phase ended


class Load:
    def __init__(self, base_url: str, holders: list[str], concurrency: int):
        self.client = httpx.AsyncClient(base_url=base_url, timeout=60,
                                        limits=httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency))
        self.holders = holders
        self.concurrency = concurrency
        self.count = 0

    async def place(self, placed: Placed) -> None:
        holder = self.holders[self.count % len(self.holders)]
        self.count += 1
        started = time.perf_counter()
        placed.first = placed.first or started
        try:
            response = await self.client.post("/orders", json={"holderId": holder, "currencyId": "1", "amount": 1})
        except httpx.HTTPError as exc:
            placed.errors[type(exc).__name__] += 1
            return
        placed.last_response = time.perf_counter()
        if response.status_code == 201:
            placed.posted[response.json()["id"]] = started
        else:
            placed.errors[f"HTTP {response.status_code}"] += 1

    async def burst(self, count: int) -> Placed:
        """`count` POSTs, `concurrency` at a time, as fast as the web answers."""
        placed = Placed()
        queue = iter(range(count))

        async def worker():
            for _ in queue:
                await self.place(placed)

        await asyncio.gather(*(worker() for _ in range(self.concurrency)))
        return placed

    async def offered(self, rate: float, seconds: float) -> Placed:
        """POSTs at `rate` per second for `seconds` (open loop: each is sent at its time whatever the
        answers before it, with at most MAX_IN_FLIGHT outstanding; what could not be sent within
        `seconds` is not sent, and counted in `placed.unsent`)."""
        placed = Placed()
        room = asyncio.Semaphore(MAX_IN_FLIGHT)
        tasks = set()
        start = time.perf_counter()
        total = int(rate * seconds)
        for i in range(total):
            delay = start + i / rate - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            try:
                await asyncio.wait_for(room.acquire(), max(0.001, start + seconds - time.perf_counter()))
            except TimeoutError:
                placed.unsent = total - i
                break
            task = asyncio.create_task(self.place(placed))
            task.add_done_callback(lambda _: room.release())
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        if tasks:
            await asyncio.gather(*tasks)
        return placed

    async def close(self) -> None:
        await self.client.aclose()


# --- the run ---------------------------------------------------------------------------------------
@dataclass
class Row:
    figure: str
    value: str
    ratio: str = ""
    detail: bool = False  # printed under the table, not in it


class Bench:
    def __init__(self, args):
        self.args = args
        self.rows: list[Row] = []
        self.system: System | None = None
        self.raw = None

    def say(self, text: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {text}", flush=True)

    def row(self, figure: str, value: str, ratio: str = "", detail: bool = False) -> None:
        self.rows.append(Row(figure, value, ratio, detail))

    def start_system(self, tmp: Path) -> System:
        a = self.args
        env = {
            "SAGA_TOPIC_PARTITIONS": str(a.partitions),
            "SAGA_DEADLINE_SECONDS": str(a.deadline_seconds),
            "SAGA_FAULT_DELAY_SECONDS": str(a.deadline_seconds + 5),
            "SAGA_CONSISTENCY_GRACE_SECONDS": "2",
            "SAGA_LOG_LEVEL": "WARNING",
        }
        system = System(tmp, replicas=a.replicas, **env)
        database = "PostgreSQL" if system.env.get("DATABASE_URL", "").startswith("postgres") else "SQLite"
        self.say(f"starting Sagaboard: {database}, {a.replicas} process(es) per service, {a.partitions} partitions, "
                 f"web on :{system.port}, broker on :{system.broker_port}")
        system.start(180)
        return system

    def pids(self) -> list[int]:
        return self.system.pids()

    async def run(self) -> int:
        with tempfile.TemporaryDirectory(prefix="sagaboard-bench-") as tmp:
            self.system = self.start_system(Path(tmp))
            try:
                return await self.measure()
            finally:
                self.say("stopping Sagaboard")
                self.system.stop()
                kept = ROOT / "var" / "bench-system.log"  # every process's log, for a look afterwards
                kept.parent.mkdir(exist_ok=True)
                shutil.copyfile(self.system.log_path, kept)
                self.say(f"the system's log: {kept}")

    async def measure(self) -> int:
        a = self.args
        s = self.system
        bootstrap = f"127.0.0.1:{s.broker_port}"
        topic = s.env.get("SAGA_TOPIC", "choreography.deadline")
        holders = [f"bench-{i:03d}" for i in range(a.holders)]
        for holder in holders:
            s.grant(holder, a.grant)
        own_cpu_start = time.process_time()

        # 1. the raw limit
        self.say(f"raw limit: three hops of bare aiokafka, a burst of {a.raw_orders}, then {a.one_at_a_time} one at a time")
        chain = RawChain(bootstrap, a.partitions, RAW_FETCH_MAX_WAIT_MS)
        await chain.start()
        broker = [p for p in self.pids() if process_label(p) == "broker"]
        try:
            broker_before = total_cpu(broker)
            raw = await chain.measure(a.raw_orders, a.one_at_a_time, total_cpu)
            raw_broker_ms = (total_cpu(broker) - broker_before) * 1000 / (a.raw_orders + a.one_at_a_time)
        finally:
            chain.stop()
        raw_cpu = raw.cpu_ms_per_order + raw_broker_ms
        self.raw = raw
        self.row("raw: 3 hops of bare aiokafka, burst", f"{raw.burst_per_second:,.0f} orders/s", "1")
        self.row("raw: burst latency p50 / p99", f"{raw.burst_p50_ms:.0f} / {raw.burst_p99_ms:.0f} ms")
        self.row("raw: one at a time p50 / p99", f"{raw.one_p50_ms:.1f} / {raw.one_p99_ms:.1f} ms", "1")
        self.row("raw: CPU per order (hops + broker)", f"{raw_cpu:.2f} ms", "1")

        watcher = TerminalWatcher(bootstrap, topic, Path(s.env["SAGA_DATA_DIR"]))
        await watcher.start()
        load = Load(f"http://127.0.0.1:{s.port}", holders, a.concurrency)
        all_orders: dict[int, float] = {}
        try:
            # 2. POST /orders alone: the services stopped, so the web tier has the machine
            self.say(f"POST /orders alone: {a.post_orders} orders, {a.concurrency} at a time, the services stopped")
            for name in ("order", "exchange", "point", "deadline", "monitor"):
                s.stop_service(name)
            placed = await load.burst(a.post_orders)
            post_rate = len(placed.posted) / (placed.last_response - placed.first)
            for name in ("order", "exchange", "point", "deadline", "monitor"):
                s.start_service(name)
            all_orders.update(placed.posted)
            self.row("POST /orders alone", f"{post_rate:,.0f} requests/s", ratio(post_rate, raw.burst_per_second))
            self.note_errors("POST alone", placed)
            if not await watcher.wait_for(placed.posted, a.deadline_seconds + 60):
                self.say("  (not every order of the POST phase finished within the deadline + 60 s)")
            await self.quiet()

            # 3. the burst, and its CPU
            self.say(f"burst: {a.orders} orders end to end, {a.concurrency} POSTs at a time")
            pids = self.pids()
            cpu_before = cpu_by_label(pids)
            placed = await load.burst(a.orders)
            finished = await watcher.wait_for(placed.posted, a.deadline_seconds + 120)
            cpu_after = cpu_by_label(pids)
            all_orders.update(placed.posted)
            self.report_run(f"burst of {a.orders:,}", placed, watcher, finished)
            spent = sum(cpu_after.values()) - sum(cpu_before.values())
            per_order = spent * 1000 / max(1, len(placed.posted))
            self.row("CPU per order, all processes (burst)", f"{per_order:.2f} ms", times(per_order, raw_cpu))
            split = ", ".join(f"{k} {(cpu_after[k] - cpu_before[k]) * 1000 / max(1, len(placed.posted)):.2f}"
                              for k in sorted(cpu_after, key=lambda k: cpu_before[k] - cpu_after[k]) if cpu_after[k] > cpu_before[k])
            self.row("CPU per order, by process (burst)", split + " ms", detail=True)
            await self.quiet()

            # 4. sustained offered rates
            for rate in a.rates:
                self.say(f"sustained: {rate}/s offered for {a.rate_seconds:g} s")
                placed = await load.offered(rate, a.rate_seconds)
                finished = await watcher.wait_for(placed.posted, a.deadline_seconds + 60)
                all_orders.update(placed.posted)
                self.report_run(f"{rate}/s offered for {a.rate_seconds:g} s", placed, watcher, finished)
                await self.quiet()

            # 5. one at a time
            self.say(f"one at a time: {a.one_at_a_time} orders")
            latencies = {}
            for _ in range(a.one_at_a_time):
                placed = Placed()
                await load.place(placed)
                all_orders.update(placed.posted)
                if placed.posted and await watcher.wait_for(placed.posted, a.deadline_seconds + 10):
                    (oid, started), = placed.posted.items()
                    latencies[oid] = (watcher.arrived[oid] - started) * 1000
            p50, p99 = percentile(list(latencies.values()), 50), percentile(list(latencies.values()), 99)
            self.row("one order at a time, POST → terminal p50 / p99", f"{p50:.1f} / {p99:.1f} ms", times(p50, raw.one_p50_ms))
            if latencies:
                slowest = max(latencies, key=latencies.get)
                self.row(f"one at a time, the slowest (order {slowest}, {latencies[slowest]:,.0f} ms), each hop's fetch",
                         self.hops(slowest), detail=True)

            # 6. idle
            await self.quiet()
            self.say(f"idle: {a.idle_seconds:g} s with nothing to do")
            pids = self.pids()
            before, t0 = cpu_by_label(pids), time.monotonic()
            await asyncio.sleep(a.idle_seconds)
            after, seconds = cpu_by_label(pids), time.monotonic() - t0
            idle = {k: (after[k] - before[k]) * 100 / seconds for k in after}
            self.row("idle, whole system", f"{sum(idle.values()):.1f} % of one core")
            self.row("idle, by process", ", ".join(f"{k} {v:.1f}" for k, v in sorted(idle.items(), key=lambda kv: -kv[1])) + " % of one core", detail=True)
        finally:
            await load.close()
            await watcher.stop()
        self.row("the bench's own CPU (not counted above)", f"{time.process_time() - own_cpu_start:.1f} s", detail=True)
        self.print_table()
        return self.check(holders, all_orders)

    def report_run(self, name: str, placed: Placed, watcher: TerminalWatcher, finished: bool) -> None:
        done = [oid for oid in placed.posted if oid in watcher.arrived]
        latencies = [(watcher.arrived[oid] - placed.posted[oid]) * 1000 for oid in done]
        end = max((watcher.arrived[oid] for oid in done), default=placed.first)
        rate = len(done) / (end - placed.first) if end > placed.first else 0.0
        by_deadline = sum(1 for oid in done if watcher.status[oid] == "REJECTED DUE TO DEADLINE")
        approved = sum(1 for oid in done if watcher.status[oid] == "APPROVED")
        self.row(f"{name}: end to end", f"{rate:,.0f} orders/s", ratio(rate, self.raw.burst_per_second))
        self.row(f"{name}: POST → terminal p50 / p99 / max",
                 f"{percentile(latencies, 50):,.0f} / {percentile(latencies, 99):,.0f} / {max(latencies, default=float('nan')):,.0f} ms",
                 times(percentile(latencies, 50), self.raw.burst_p50_ms))
        self.row(f"{name}: outcome", f"{approved} approved, {by_deadline} rejected by deadline"
                 + ("" if finished else f", {len(placed.posted) - len(done)} unfinished")
                 + (f", {placed.unsent} not sent (the web fell behind)" if placed.unsent else ""))
        self.note_errors(name, placed)

    def hops(self, order_id: int) -> str:
        """Each service's fetch of each event of an order: the broker's timestamp of the record
        to its consumer taking it (GET /outcomes: receivedAtMs − publishedAtMs), in ms."""
        outcomes = self.system.get("/outcomes", orderId=order_id)
        hops = [(o["receivedAtMs"], f"{o['service']} {o['eventType']} {o['receivedAtMs'] - o['publishedAtMs']}")
                for o in outcomes if o.get("receivedAtMs") and o.get("publishedAtMs")]
        return ", ".join(text for _, text in sorted(hops)) + " ms"

    def note_errors(self, name: str, placed: Placed) -> None:
        if placed.errors:
            self.row(f"{name}: failed POSTs", ", ".join(f"{k} × {v}" for k, v in placed.errors.items()))

    async def quiet(self) -> None:
        """Wait until no order is pending and no event has been recorded for a second (the last
        compensations done), bounded by the deadline + 30 s: the next phase starts clean."""
        def settled():
            if self.system.get("/dashboard/board.json", status="PENDING")["count"]:
                return False
            newest = self.system.get("/events", limit=1)
            return not newest or time.time() * 1000 - newest[0]["timestamp"] > 1000
        try:
            await asyncio.to_thread(wait_until, settled, self.args.deadline_seconds + 30, 0.5, "every order to settle")
        except AssertionError as exc:
            self.say(f"  (going on: {exc})")
        await asyncio.sleep(1)

    def print_table(self) -> None:
        table = [r for r in self.rows if not r.detail]
        width = max(len(r.figure) for r in table)
        vwidth = max(len(r.value) for r in table)
        print()
        print(f"{'figure':<{width}}  {'value':>{vwidth}}  ratio to raw")
        print("-" * (width + vwidth + 16))
        for r in table:
            print(f"{r.figure:<{width}}  {r.value:>{vwidth}}  {r.ratio}")
        print()
        for r in self.rows:
            if r.detail:
                print(f"{r.figure}: {r.value}")
        print(flush=True)

    def check(self, holders: list[str], placed: dict[int, float]) -> int:
        """Every saga consistent: the checker empty, balances = grant − APPROVED amounts × rate."""
        s = self.system
        problems = []
        try:
            wait_until(lambda: s.get("/consistency")["count"] == 0, 20, 0.5, "the checker to report nothing")
        except AssertionError:
            anomalies = s.get("/consistency")["anomalies"]
            problems.append(f"the checker reports {len(anomalies)} anomalies, e.g. {anomalies[:3]}")
        orders = s.get("/orders")
        rate = Decimal(str(s.env.get("SAGA_EXCHANGE_RATE", "1.0")))
        spent: Counter = Counter()
        for o in orders:
            if o["status"] == "APPROVED":
                spent[o["holderId"]] += exchanged(o["amount"], rate)
        balances = {p["userId"]: Decimal(str(p["point"])) for p in s.get("/points")}
        for holder in holders:
            expected = Decimal(self.args.grant) - spent[holder]
            if balances.get(holder) != expected:
                problems.append(f"{holder}: balance {balances.get(holder)}, expected {expected}")
        missing = set(placed) - {o["id"] for o in orders}
        if missing:
            problems.append(f"{len(missing)} accepted orders are not stored")
        if problems:
            print("INCONSISTENT:\n  " + "\n  ".join(problems[:20]), flush=True)
            return 1
        print(f"consistent: {len(orders)} orders, checker empty, {len(holders)} balances = grant − approved × rate", flush=True)
        return 0


def ratio(value: float, raw: float) -> str:
    """A throughput as a share of the raw limit's."""
    return f"{value / raw:.1%}" if raw else ""


def times(value: float, raw: float) -> str:
    """A cost or latency as a multiple of the raw limit's."""
    return f"{value / raw:,.1f}×" if raw else ""


async def until_stopped(work) -> int:
    """Run `work`; SIGTERM or Ctrl-C cancels it, and its cleanup stops the system it started
    (exit 130: interrupted), so no process of it outlives the bench."""
    task = asyncio.ensure_future(work)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, task.cancel)
    try:
        return await task
    except asyncio.CancelledError:
        print("interrupted: the system was stopped", flush=True)
        return 130


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--orders", type=int, default=5000, help="the burst's orders (N)")
    parser.add_argument("--post-orders", type=int, default=2000, help="orders of the POST-alone phase")
    parser.add_argument("--rates", default="100,200,400,800", help="sustained offered rates, orders/s, comma-separated")
    parser.add_argument("--rate-seconds", type=float, default=30, help="how long each offered rate runs")
    parser.add_argument("--one-at-a-time", type=int, default=50, help="orders placed one after another")
    parser.add_argument("--idle-seconds", type=float, default=30)
    parser.add_argument("--replicas", type=int, default=1, help="processes per service")
    parser.add_argument("--partitions", type=int, default=3, help="partitions of the saga topic")
    parser.add_argument("--concurrency", type=int, default=32, help="POSTs in flight in the burst phases")
    parser.add_argument("--holders", type=int, default=100)
    parser.add_argument("--grant", type=int, default=1_000_000, help="points granted to each holder")
    parser.add_argument("--deadline-seconds", type=float, default=10.0)
    parser.add_argument("--raw-orders", type=int, default=20000, help="the raw chain's burst")
    args = parser.parse_args()
    args.rates = [float(r) if "." in r else int(r) for r in args.rates.split(",") if r.strip()]
    if min(args.orders, args.post_orders, args.one_at_a_time, args.raw_orders) < 1:
        parser.error("counts must be at least 1")
    started = time.monotonic()
    code = asyncio.run(until_stopped(Bench(args).run()))
    print(f"bench took {time.monotonic() - started:.0f} s", flush=True)
    return code


if __name__ == "__main__":
    sys.exit(main())
