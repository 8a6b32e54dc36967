"""Where the CPU goes: py-spy samples every process of a running system under a steady load.

    python bench/profile.py [--rate 100] [--seconds 20] [--top 12]

It starts the system the way the bench does (tests/system.py: `manage.py run`, embedded broker,
every service, Daphne; SQLite, or PostgreSQL with DATABASE_URL), places orders at `--rate` per
second from a client thread, and after a warm-up records each Python process with py-spy for
`--seconds` (100 samples a second, only threads holding the GIL). It prints, per process, its CPU
over the window, the functions with the largest share of its samples by self time, and
Sagaboard's own functions by inclusive time (with what they call). py-spy reads other processes' memory: run it as root, or allow
ptrace (`sysctl kernel.yama.ptrace_scope=0`). `pip install py-spy` (the `profile` extra).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from bench.throughput import cpu_seconds, process_label  # noqa: E402
from tests.system import System  # noqa: E402

PYTHON_PROCESSES = ("web", "order", "exchange", "point", "deadline", "monitor")


def load(port: int, rate: float, stop: threading.Event) -> int:
    """POST /orders at `rate` per second until `stop`; how many were placed."""
    placed = 0
    with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        start = time.monotonic()
        while not stop.is_set():
            delay = start + placed / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            client.post("/orders", json={"holderId": f"p-{placed % 20}", "currencyId": "1", "amount": 1})
            placed += 1
    return placed


def summarize(raw: Path, top: int) -> tuple[int, list[tuple[str, float]], list[tuple[str, float]]]:
    """From py-spy's collapsed stacks: (samples, the top functions by self share, the top of
    Sagaboard's own functions by inclusive share), shares in % of the samples."""
    inclusive, own, total = Counter(), Counter(), 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack:
            continue
        n = int(count)
        frames = [_frame(f) for f in stack.split(";")[1:]]  # the first frame names the thread
        total += n
        for frame in {f for f in frames if f[1]}:
            inclusive[frame[0]] += n
        if frames:
            own[frames[-1][0]] += n
    by_self = [(f, 100 * n / total) for f, n in own.most_common(top)]
    by_inclusive = [(f, 100 * n / total) for f, n in inclusive.most_common(top)]
    return total, by_self, by_inclusive


def _frame(text: str) -> tuple[str, bool]:
    """('function (path)', whether it is Sagaboard's own code) from 'function (path:line)'."""
    function, _, where = text.rpartition(" (")
    path = where.rsplit(":", 1)[0]
    ours = str(ROOT) in path and "/.venv" not in path and "site-packages" not in path
    short = path.split("site-packages/")[-1] if "site-packages/" in path else path.replace(str(ROOT) + "/", "")
    return f"{function or text} ({short})", ours


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=100)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--warmup", type=float, default=5)
    parser.add_argument("--top", type=int, default=12)
    args = parser.parse_args()
    py_spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not Path(py_spy).exists():
        sys.exit("py-spy is missing: pip install py-spy")
    with tempfile.TemporaryDirectory(prefix="sagaboard-profile-") as tmp:
        system = System(Path(tmp), SAGA_DEADLINE_SECONDS="30", SAGA_LOG_LEVEL="WARNING")
        system.start(180)
        try:
            for i in range(20):
                system.grant(f"p-{i}", 10**9)
            stop = threading.Event()
            result = {}
            loader = threading.Thread(target=lambda: result.setdefault("placed", load(system.port, args.rate, stop)))
            loader.start()
            time.sleep(args.warmup)
            pids = {}
            for pid in system.pids():  # several web processes: web, web-2, ...
                label = process_label(pid)
                pids[label if label not in pids else f"{label}-{sum(k.startswith(label) for k in pids) + 1}"] = pid
            profiled = [name for name in pids if name.split("-")[0] in PYTHON_PROCESSES]
            cpu_before = {name: cpu_seconds(pid) for name, pid in pids.items()}
            recorders = {}
            for name in profiled:
                out = Path(tmp) / f"{name}.txt"
                recorders[name] = (out, subprocess.Popen(
                    [py_spy, "record", "--pid", str(pids[name]), "--duration", str(int(args.seconds)), "--rate", "100",
                     "--format", "raw", "--gil", "--full-filenames", "--output", str(out), "--nonblocking"],
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
            for _, proc in recorders.values():
                proc.wait(args.seconds + 60)
            cpu = {name: cpu_seconds(pid) - cpu_before[name] for name, pid in pids.items()}
            stop.set()
            loader.join(60)
            print(f"\n{args.rate:g} orders/s offered; {args.seconds:g} s recorded; CPU in the window "
                  f"(% of one core): " + ", ".join(f"{n} {100 * c / args.seconds:.0f}" for n, c in sorted(cpu.items(), key=lambda kv: -kv[1])))
            for name in profiled:
                out, _ = recorders[name]
                if not out.exists():
                    print(f"\n{name}: no profile (py-spy could not attach)")
                    continue
                samples, by_self, by_inclusive = summarize(out, args.top)
                print(f"\n{name}: {samples} samples holding the GIL ({100 * cpu[name] / args.seconds:.0f} % of a core)")
                print("  self:")
                for function, share in by_self:
                    print(f"    {share:5.1f} %  {function}")
                print("  Sagaboard's own, inclusive:")
                for function, share in by_inclusive:
                    print(f"    {share:5.1f} %  {function}")
        finally:
            system.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
