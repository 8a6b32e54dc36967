"""WebSocket feed latency: publish events to the saga topic at a steady rate for a bounded time and
measure, per event, the time from its publication (just before the producer sends it) to its
arrival at a WebSocket client of /ws/sagas/. Prints p50/p99/max (target: p99 ≤ 100 ms at ~200/s).

    python bench/ws_latency.py [--rate 200] [--seconds 20]

It starts the whole system with the test harness (tests/system.py: `manage.py run`, embedded
broker, every service, Daphne) on free ports of 127.0.0.1 in a temporary directory — SQLite, or
PostgreSQL when DATABASE_URL is set — and stops it when done. The events are PointsGranted of a
holder "bench" that no service acts on (the monitor records them), so the sagas are untouched.
After the broker acknowledges each, the bench rings the system's doorbells as Sagaboard's own
publishers do (sagaboard/kernel/doorbell.py), so the feed's consumer fetches it at once.
"""
import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.system import System  # noqa: E402


def pct(values, p):
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def measure(system: System, rate: int, seconds: float) -> tuple[list[float], list[float], int]:
    from aiokafka import AIOKafkaProducer
    from websockets.asyncio.client import connect

    from sagaboard.kernel.doorbell import Ringer, directory
    from sagaboard.kernel.events import Event

    ringer = Ringer(directory(Path(system.env["SAGA_DATA_DIR"])))

    sent: dict[str, int] = {}
    latencies: list[float] = []
    feed_lags: list[float] = []  # broker timestamp → the feed's consumer, for the split
    producer = AIOKafkaProducer(bootstrap_servers=f"127.0.0.1:{system.broker_port}", acks="all", linger_ms=0)
    await producer.start()
    url = f"ws://127.0.0.1:{system.port}/ws/sagas/"
    try:
        async with connect(url, origin=f"http://127.0.0.1:{system.port}", proxy=None, max_queue=None) as ws:
            assert json.loads(await ws.recv())["kind"] == "hello"
            await asyncio.sleep(2)  # the feed's consumer starts with the first client and seeks to the end

            async def receive():
                async for raw in ws:
                    arrived = time.perf_counter_ns()
                    message = json.loads(raw)
                    if message.get("kind") == "event" and message["event"]["eventId"] in sent:
                        latencies.append((arrived - sent.pop(message["event"]["eventId"])) / 1e6)
                        feed_lags.append(message["receivedAt"] - message["publishedAt"])

            receiver = asyncio.create_task(receive())
            interval = 1 / rate
            start = time.perf_counter()
            total = int(rate * seconds)
            for i in range(total):
                await asyncio.sleep(max(0.0, start + i * interval - time.perf_counter()))
                event = Event(eventType="PointsGranted", orderId=None, source="bench", payload={"holderId": "bench", "point": 0})
                sent[event.eventId] = time.perf_counter_ns()
                ack = await producer.send(system.env.get("SAGA_TOPIC", "choreography.deadline"), event.to_bytes(), key=b"bench")
                ack.add_done_callback(lambda _: ringer.ring())  # as Sagaboard's publishers do once the broker has it
            end = time.monotonic() + 10  # bounded wait for the stragglers
            while sent and time.monotonic() < end:
                await asyncio.sleep(0.05)
            receiver.cancel()
            return latencies, feed_lags, total
    finally:
        await producer.stop()
        ringer.close()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=int, default=200, help="events per second")
    parser.add_argument("--seconds", type=float, default=20, help="how long to publish")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ws-latency-") as tmp:
        system = System(Path(tmp)).start()
        try:
            latencies, feed_lags, total = asyncio.run(measure(system, args.rate, args.seconds))
        finally:
            system.stop()
    if not latencies:
        sys.exit("no event reached the WebSocket client")
    print(f"published {total} events at {args.rate}/s for {args.seconds:g} s; {len(latencies)} arrived "
          f"({total - len(latencies)} missing)")
    print(f"publication → WebSocket client   p50 {statistics.median(latencies):7.2f} ms   p99 {pct(latencies, 99):7.2f} ms   "
          f"max {max(latencies):7.2f} ms")
    print(f"  of which publication → feed (ms clocks)  p50 {statistics.median(feed_lags):5.0f} ms   p99 {pct(feed_lags, 99):5.0f} ms")
    if pct(latencies, 99) > 100:
        print("p99 is above the 100 ms target")


if __name__ == "__main__":
    main()
