"""What one handled event costs a service, in process: the saga's real handlers, batches of the
size a busy consumer takes, on fresh SQLite databases of this run (DATABASE_URL is ignored, so a
run never touches another's PostgreSQL databases). No broker and no other process: this is the
handlers' and the batch's own cost (sagaboard/kernel/batch.py), the part of a service's CPU that
ORM queries decide.

    python bench/handlers.py [--orders 2000] [--batch 50] [--repeats 5] [--profile exchange]

For each step of a placed order's saga (exchange on OrderCreated, point on ExchangeSucceeded,
order on PointUsed, deadline on OrderCreated then OrderPlaced), it applies `--orders` events in
batches of `--batch` and prints ms of wall time per event (median of `--repeats` runs, each on
new orders) and SQL queries per event. `--profile SERVICE` prints pyinstrument's tree of one more
run (`pip install -e '.[profile]'`). README, "Typed rings and a longer linger": what it showed.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STEPS = (  # (service, event type): a placed order's saga, in the order it runs
    ("exchange", "OrderCreated"),
    ("point", "ExchangeSucceeded"),
    ("order", "PointUsed"),
    ("deadline", "OrderCreated"),
    ("deadline", "OrderPlaced"),
)
HOLDERS = 50


def setup(data_dir: Path) -> None:
    """Django on fresh SQLite databases in `data_dir`, migrated."""
    for name in [n for n in os.environ if n.endswith("DATABASE_URL")]:
        del os.environ[name]
    os.environ["SAGA_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "sagaboard.settings")
    import django
    from django.conf import settings

    django.setup()
    settings.DEBUG = False  # as in a service process (runservice): no debug cursor
    from django.core.management import call_command

    for alias in settings.DATABASES:
        call_command("migrate", database=alias, verbosity=0)


def saga_events(first_order: int, count: int):
    """The events of `count` placed orders from `first_order`, per step of the saga."""
    from sagaboard.kernel.events import Event

    created = [Event(eventType="OrderCreated", orderId=first_order + i, source="order", policy="safe",
                     payload={"holderId": f"h{i % HOLDERS}", "currencyId": "1", "amount": 1}, deadline=2**42)
               for i in range(count)]
    succeeded = [e.caused("ExchangeSucceeded", "exchange", {**e.payload, "point": "1.00"}) for e in created]
    used = [e.caused("PointUsed", "point", {"holderId": e.payload["holderId"], "point": "1.00"}) for e in succeeded]
    placed = [e.caused("OrderPlaced", "order", {"holderId": e.payload["holderId"]}) for e in used]
    return {"OrderCreated": created, "ExchangeSucceeded": succeeded, "PointUsed": used, "OrderPlaced": placed}


def deliveries(service, events):
    from aiokafka.structs import ConsumerRecord

    from sagaboard.kernel.batch import Delivery

    out = []
    for n, event in enumerate(events):
        record = ConsumerRecord("t", 0, n, 0, 0, event.key, event.to_bytes(), None, 0, 0,
                                [("type", event.eventType.encode())])
        out.append(Delivery("tp", record, event=event, handler=service.handlers[event.eventType], received_at_ms=0))
    return out


def services():
    from services.deadline.saga import service as deadline
    from services.exchange.saga import service as exchange
    from services.order.saga import service as order
    from services.point.saga import service as point

    return {s.name: s for s in (exchange, point, order, deadline)}


def prepare(first_order: int, count: int) -> None:
    """The orders (PENDING, in the order database) and the holders' points the saga needs."""
    from django.db import transaction

    from services.order.models import PENDING, Order
    from services.point.models import Account

    with transaction.atomic(using="order"):
        Order.objects.bulk_create(Order(id=first_order + i, holder_id=f"h{i % HOLDERS}", currency_id="1", amount=1,
                                        policy="safe", deadline=2**42, status=PENDING) for i in range(count))
    for i in range(HOLDERS):
        Account.objects.update_or_create(holder_id=f"h{i}", defaults={"point": 10**6})


def run_once(first_order: int, count: int, batch: int) -> dict[tuple[str, str], tuple[float, float]]:
    """Apply every step to `count` new orders; (ms per event, queries per event) per step."""
    from django.db import connections

    prepare(first_order, count)
    events, by_name, out = saga_events(first_order, count), services(), {}
    for name, event_type in STEPS:
        service = by_name[name]
        todo = deliveries(service, events[event_type])
        queries = []
        with connections[name].execute_wrapper(lambda execute, sql, *rest, queries=queries: queries.append(sql) or execute(sql, *rest)):
            start = time.perf_counter()
            for i in range(0, len(todo), batch):
                result = service.apply_batch(todo[i:i + batch])
                assert not result.failed, result.failed[0].last_error
            elapsed = time.perf_counter() - start
        out[(name, event_type)] = (elapsed * 1000 / count, len(queries) / count)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--orders", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--profile", choices=list(dict.fromkeys(s for s, _ in STEPS)),
                        help="print pyinstrument's tree of one run")
    args = parser.parse_args()
    data_dir = Path(tempfile.mkdtemp(prefix="sagaboard-handlers-"))
    try:
        setup(data_dir)
        runs = []
        for repeat in range(args.repeats):
            runs.append(run_once(1 + repeat * args.orders, args.orders, args.batch))
        print(f"{args.orders} orders, batches of {args.batch}, median of {args.repeats} runs")
        print(f"{'service':<10} {'event':<18} {'ms/event':>9} {'queries/event':>14}")
        total = 0.0
        for step in runs[0]:
            ms = statistics.median(r[step][0] for r in runs)
            total += ms
            print(f"{step[0]:<10} {step[1]:<18} {ms:>9.3f} {runs[0][step][1]:>14.2f}")
        print(f"{'all steps':<29} {total:>9.3f}")
        if args.profile:
            from pyinstrument import Profiler

            profiler = Profiler(interval=0.0005)
            with profiler:
                run_once(1 + args.repeats * args.orders, args.orders, args.batch)
            print(profiler.output_text(unicode=True, show_all=False))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
