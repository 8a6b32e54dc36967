"""How the order page's timeline copes with a big saga (issue 12: "smooth for a saga with 500
events"): one order with N operator adjustments on it (each a PointsAdjusted event and a recorded
effect: two marks), drawn in Chromium next to a happy path of four events measured in the same run.

Figures (medians over the runs; each is the page's own performance.now(), written by SagaChart on
its SVG): the first draw (build every mark, measure every label, lay out), and one zoom frame's
layout (place marks and labels, move every element) while the wheel zooms in and out. A frame of
a 60 Hz screen lasts 16.7 ms.

    make bench-timeline                 # N = 500
    .venv/bin/python bench/timeline.py --adjustments 100 --runs 3

Its own system (free ports, its own data directory), its own browser; traffic to 127.0.0.1 only.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.browser import CHROMIUM  # noqa: E402
from tests.system import System, wait_until  # noqa: E402

WHEEL_STEPS = 23  # wheel events per run: 12 in, 11 out (never down to the whole saga: no frame there)


def measure(page, base: str, order_id: int, runs: int) -> dict:
    """Medians over `runs` page loads of the order page: first draw and zoom-frame layout, ms."""
    draws, frames, marks = [], [], 0
    for _ in range(runs):
        page.goto(f"{base}/sagas/{order_id}/")
        page.wait_for_selector("#live-state[data-state=live]")
        page.wait_for_timeout(1000)  # the socket's hello reads the log again and redraws: measure after
        svg = page.locator("#chart svg")
        draws.append(float(svg.get_attribute("data-draw-ms")))
        marks = int(svg.get_attribute("data-marks"))
        box = svg.bounding_box()
        page.mouse.move(box["x"] + box["width"] / 2, box["y"] + 60)
        for step in range(WHEEL_STEPS):
            before = int(svg.get_attribute("data-layouts"))
            page.mouse.wheel(0, -120 if step < 12 else 120)
            try:
                page.wait_for_function(f"() => Number(document.querySelector('#chart svg').dataset.layouts) > {before}", timeout=10_000)
            except Exception as exc:
                raise AssertionError(f"no layout after wheel step {step} (zoom {svg.get_attribute('data-zoom')})") from exc
            frames.append(float(svg.get_attribute("data-layout-ms")))
    return {"marks": marks, "draw": statistics.median(draws), "frame": statistics.median(frames), "frame_max": max(frames)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adjustments", type=int, default=500, help="operator adjustments on the big order (default 500)")
    parser.add_argument("--runs", type=int, default=5, help="page loads measured per order (default 5)")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    system = System(Path(tempfile.mkdtemp(prefix="sagaboard-bench-timeline-")), SAGA_DEADLINE_SECONDS="600")
    system.start(120)
    try:
        system.grant("bench", 1_000_000)
        small = system.settled(system.order("bench", 100)["id"])["id"]
        big = system.settled(system.order("bench", 100)["id"])["id"]
        started = time.monotonic()

        def adjust(n: int) -> None:
            system.post("/corrections/adjust", {"holderId": "bench", "point": "1.00" if n % 2 else "-1.00",
                                                "reason": f"bench adjustment {n}", "orderId": big}, expect=202)

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(adjust, range(args.adjustments)))
        wanted = 4 + args.adjustments
        wait_until(lambda: len(system.get("/events", orderId=big, limit=wanted + 10)) >= wanted, 300, 0.5, "the adjustments' events")
        wait_until(lambda: sum(o["eventType"] == "PointsAdjusted" for o in system.get("/outcomes", orderId=big)) >= args.adjustments,
                   300, 0.5, "the point service to apply every adjustment")
        placed = time.monotonic() - started
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--headless=new"])
            try:
                page = browser.new_page(viewport={"width": 1500, "height": 1000})
                base = f"http://127.0.0.1:{system.port}"
                baseline = measure(page, base, small, args.runs)
                heavy = measure(page, base, big, args.runs)
            finally:
                browser.close()
    finally:
        system.stop()
    events = 4 + args.adjustments
    print(f"timeline bench: {args.runs} page loads per order, {WHEEL_STEPS} wheel steps each "
          f"({args.adjustments} adjustments placed in {placed:.1f} s)")
    print("| saga | marks | first draw (median) | zoom frame layout (median / max) |")
    print("|---|---:|---:|---:|")
    print(f"| happy path, 4 events (baseline) | {baseline['marks']} | {baseline['draw']:.1f} ms | "
          f"{baseline['frame']:.2f} / {baseline['frame_max']:.1f} ms |")
    print(f"| {events} events | {heavy['marks']} | {heavy['draw']:.1f} ms ({heavy['draw'] / baseline['draw']:.0f}×) | "
          f"{heavy['frame']:.2f} / {heavy['frame_max']:.1f} ms ({heavy['frame'] / baseline['frame']:.0f}×) |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
