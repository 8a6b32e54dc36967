"""`make bench` runs: a tiny run of bench/throughput.py completes, prints every figure of its
table and finds every saga consistent. No figure is checked against a threshold: speed is
measured by the bench, never gated by a test."""
import subprocess
import sys

import pytest

from tests.system import ROOT

pytestmark = pytest.mark.system

FIGURES = [
    "raw: 3 hops of bare aiokafka, burst", "raw: one at a time p50 / p99", "raw: CPU per order",
    "POST /orders alone", "burst of 30: end to end", "burst of 30: POST → terminal p50 / p99 / max",
    "CPU per order, all processes (burst)", "20/s offered for 2 s: end to end",
    "20/s offered for 2 s: POST → terminal p50 / p99 / max", "one order at a time, POST → terminal p50 / p99",
    "idle, whole system", "CPU per order, by process (burst)", "idle, by process",
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
