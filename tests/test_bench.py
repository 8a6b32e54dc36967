"""`make bench` runs: a tiny run of bench/throughput.py completes, prints every figure of its
table and finds every saga consistent. No figure is checked against a threshold: speed is
measured by the bench, never gated by a test."""
import re
import signal
import subprocess
import sys
import time

import pytest

from tests.system import ROOT, listening

pytestmark = pytest.mark.system

FIGURES = [
    "raw: 3 hops of bare aiokafka, burst", "raw: one at a time p50 / p99", "raw: CPU per order",
    "POST /orders alone", "burst of 30: end to end", "burst of 30: POST → terminal p50 / p99 / max",
    "CPU per order, all processes (burst)", "20/s offered for 2 s: end to end",
    "20/s offered for 2 s: POST → terminal p50 / p99 / max", "one order at a time, POST → terminal p50 / p99",
    "idle, whole system", "CPU per order, by process (burst)", "idle, by process",
    "one at a time, the slowest (order",
]


def test_a_tiny_bench_completes_and_prints_every_figure(tmp_path):
    done = subprocess.run(
        [sys.executable, "bench/throughput.py", "--orders", "30", "--post-orders", "20", "--rates", "20",
         "--rate-seconds", "2", "--one-at-a-time", "5", "--idle-seconds", "2", "--raw-orders", "300",
         "--holders", "5"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for figure in FIGURES:
        assert figure in done.stdout, f"{figure!r} missing from:\n{done.stdout}"
    assert "consistent: " in done.stdout and "INCONSISTENT" not in done.stdout


def test_sigterm_stops_the_bench_and_the_system_it_started():
    bench = subprocess.Popen([sys.executable, "bench/throughput.py", "--raw-orders", "300", "--post-orders", "20000"],
                             cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        lines = []
        for line in bench.stdout:  # bounded: the POST phase of 20,000 orders outlasts this loop
            lines.append(line)
            if "POST /orders alone" in line:
                break
        ports = re.search(r"web on :(\d+), broker on :(\d+)", "".join(lines))
        assert ports, "".join(lines)
        web, broker = int(ports[1]), int(ports[2])
        assert listening(web) and listening(broker)
        time.sleep(1)
        bench.send_signal(signal.SIGTERM)
        rest, _ = bench.communicate(timeout=120)
    finally:
        if bench.poll() is None:
            bench.kill()
    assert bench.returncode == 130, "".join(lines) + rest
    assert "interrupted: the system was stopped" in rest
    assert not listening(web) and not listening(broker), "the system outlived the bench"


def test_the_tansu_scan_bench_prints_a_row_per_size():
    done = subprocess.run([sys.executable, "bench/tansu_scan.py", "--sizes", "50,200"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = [line for line in done.stdout.splitlines() if re.match(r"\s+(50|200)  ", line)]
    assert len(rows) == 2 and all(" ms " in row and " of 10" in row for row in rows), done.stdout


def test_the_handlers_bench_prints_time_and_queries_per_event_for_every_step():
    """bench/handlers.py: the saga's real handlers in process; each step applies every event
    (it asserts none failed) and makes at least one query per event."""
    done = subprocess.run([sys.executable, "bench/handlers.py", "--orders", "20", "--batch", "5", "--repeats", "1"],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    rows = re.findall(r"^(\w+)\s+(\w+)\s+([\d.]+)\s+([\d.]+)$", done.stdout, re.M)
    assert [(service, event) for service, event, _, _ in rows] == [
        ("exchange", "OrderCreated"), ("point", "ExchangeSucceeded"), ("order", "PointUsed"),
        ("deadline", "OrderCreated"), ("deadline", "OrderPlaced")], done.stdout
    assert all(float(ms) > 0 and float(queries) >= 1 for _, _, ms, queries in rows), done.stdout
    assert "all steps" in done.stdout
