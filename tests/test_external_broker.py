"""Beyond one machine, proved without Docker: the whole system with two processes of every service,
against an external broker — the embedded one started on its own (the session `broker`) and given
to every process in KAFKA_BOOTSTRAP_SERVERS, exactly as docker-compose.yml gives Apache Kafka —
and on PostgreSQL through DATABASE_URL. A few hundred orders from several holders, in currencies
that approve and in the failing currency 300, some beyond the holder's points: every status,
balance, exchange and spend is as it must be, and the consistency checker finds nothing.

Always on PostgreSQL, as in production: DATABASE_URL's server, else TEST_DATABASE_URL's (the one
`make test` uses). Marked `postgres`, so the SQLite pass of `make test` leaves it to the PostgreSQL
pass instead of running the same thing twice.
"""
import os
import re
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from tests.system import SERVICES, wait_until

pytestmark = [pytest.mark.system, pytest.mark.postgres]
SYSTEM_REPLICAS = 2
SYSTEM_EXTERNAL_BROKER = True
# Eleven Django processes starting at once on a 2-core machine that other test runs share took up
# to 80 s here; readiness is still checked in full (every process up, every partition owned).
SYSTEM_START_TIMEOUT = 240
SYSTEM_DATABASE_URL = os.environ.get("DATABASE_URL") or os.environ.get(
    "TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/sagaboard_test")
PARTITIONS = 6
# A deadline far away: this test is about where the work runs, not about deadlines (a loaded
# machine must not turn an expected approval into a rejection by deadline). Two database threads
# per process instead of four: eleven processes then hold about 40 connections, which leaves room
# on a PostgreSQL server (100 by default) that other test runs share.
SYSTEM_ENV = {"SAGA_TOPIC_PARTITIONS": str(PARTITIONS), "SAGA_DEADLINE_SECONDS": "120"}

HOLDERS = [f"ext{h}" for h in range(6)]
ORDERS_PER_HOLDER = 50
APPROVING_CURRENCIES = ("1", "7", "42")
FAILING_CURRENCY = "300"  # SAGA_FAILING_CURRENCIES' default
SLACK = 1000  # every holder ends with exactly this many points


def plan():
    """(holder, currency, amount, expected status) of every order, and each holder's grant.
    Orders that approve never need more than the grant, whatever order they run in; an order
    beyond the limit asks for more than the grant, so it is refused whatever ran before it."""
    orders, grants = [], {}
    for h, holder in enumerate(HOLDERS):
        mine = []
        for i in range(ORDERS_PER_HOLDER):
            amount = 10 + (i * 37 + h * 11) % 90
            if i % 4 == 3:
                mine.append([holder, FAILING_CURRENCY, amount, "REJECTED DUE TO EXCHANGE ERROR"])
            elif i % 10 == 9:
                mine.append([holder, APPROVING_CURRENCIES[i % 3], None, "REJECTED DUE TO POINT LIMIT"])
            else:
                mine.append([holder, APPROVING_CURRENCIES[i % 3], amount, "APPROVED"])
        grants[holder] = sum(o[2] for o in mine if o[3] == "APPROVED") + SLACK
        for o in mine:
            if o[2] is None:
                o[2] = grants[holder] + 1
        orders += [tuple(o) for o in mine]
    return orders, grants


def test_nothing_is_embedded_the_external_broker_carries_the_saga(system, broker):
    assert system.env["KAFKA_BOOTSTRAP_SERVERS"] == broker
    status = system.supervisorctl("status")
    assert "broker" not in status and all(name in status for name in SERVICES), status
    assert f"external Kafka at {broker}" in system.tail(200)
    assert system.env["DATABASE_URL"].startswith("postgres")
    for name in SERVICES:
        assert re.search(rf"^  {name} .* database postgresql \S+/{system.db_prefix}_{name}$", system.tail(200), re.M), name


def heartbeats(system) -> dict[str, list[dict]]:
    """Each service's live processes as they report themselves (every second; on a loaded machine
    one may be late, so the checks below wait a little for them)."""
    return {service["name"]: service["heartbeats"] for service in system.get("/services")}


def test_two_processes_of_every_service_share_the_partitions(system):
    def shared():
        beats = heartbeats(system)
        return all(
            len(mine) == 2 and all(b["assignment"] for b in mine)
            and sorted(p for b in mine for p in b["assignment"]) == list(range(PARTITIONS))
            for mine in beats.values()
        ) and beats

    beats = wait_until(shared, 30, 0.5, "two processes of every service to share the partitions, each owned once")
    assert set(beats) == set(SERVICES)


def test_a_few_hundred_orders_end_as_they_must(system):
    orders, grants = plan()
    for holder, point in grants.items():
        system.grant(holder, point)
    started = time.monotonic()
    with ThreadPoolExecutor(4) as pool:
        placed = list(pool.map(lambda o: system.order(o[0], o[2], currency=o[1]), orders))
    expected = {p["id"]: o[3] for p, o in zip(placed, orders, strict=True)}
    assert len(expected) == len(orders) >= 300

    def all_terminal():
        statuses = {o["id"]: o["status"] for o in system.get("/orders") if o["id"] in expected}
        return statuses if all(s != "PENDING" for s in statuses.values()) and len(statuses) == len(expected) else None

    statuses = wait_until(all_terminal, 240, 0.5, "every order to reach a terminal status")
    wrong = {oid: (statuses[oid], want) for oid, want in expected.items() if statuses[oid] != want}
    assert not wrong, f"{len(wrong)} orders ended wrong (got, wanted): {dict(list(wrong.items())[:10])}"

    approved = {oid for oid, want in expected.items() if want == "APPROVED"}
    rejected = set(expected) - approved

    def last_events(event_type) -> Counter:
        """How many distinct events of this type each order has (a delivery may repeat one)."""
        distinct = {e["eventId"]: e for e in system.get("/events", type=event_type, limit=10_000)}
        return Counter(e["orderId"] for e in distinct.values())

    def sagas_ended():  # the last event of each saga: OrderPlaced, or the chained compensation's end
        ends = last_events("OrderPlaced"), last_events("PointUseCompensated")
        return set(ends[0]) == approved and set(ends[1]) == rejected and ends

    ends = wait_until(sagas_ended, 120, 0.5, "every saga to end")
    assert all(n == 1 for end in ends for n in end.values()), "each saga ended once"
    elapsed = time.monotonic() - started
    print(f"\n{len(orders)} orders through 2 processes of every service on an external broker and "
          f"PostgreSQL: settled in {elapsed:.1f} s ({len(orders) / elapsed:.0f} orders/s)")

    amounts = {p["id"]: o[2] for p, o in zip(placed, orders, strict=True)}
    balances = {a["userId"]: Decimal(a["point"]) for a in system.get("/points")}
    assert {h: balances[h] for h in HOLDERS} == {h: SLACK for h in HOLDERS}
    exchanges = {e["orderId"]: e["point"] for e in system.get("/exchanges")}
    assert exchanges == {oid: f"{amounts[oid]}.00" for oid in approved}  # the default rate 1.0; exact strings
    spends = {t["orderId"]: t["point"] for t in system.get("/transactions") if t["refundedAt"] is None}
    assert spends == {oid: f"{amounts[oid]}.00" for oid in approved}
    assert system.wait_consistent(30)

    partitions = {e["partition"] for e in system.get("/events", type="OrderCreated", limit=10_000)}
    assert partitions == set(range(PARTITIONS)), "the orders were spread over every partition"

    def every_process_worked():
        beats = heartbeats(system)
        return all(len(mine) == 2 and all(b["handled"] > 0 for b in mine)
                   for name, mine in beats.items()) and beats

    wait_until(every_process_worked, 30, 0.5, "both processes of every service to have done part of the work")
