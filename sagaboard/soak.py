"""The chaos soak: run the whole system, place many orders while faults are injected and service
processes are SIGKILLed, let everything settle, then check every invariant and report.

It runs `manage.py run` (supervisord: broker, replicas of every service, web) as a child process
on the soak's own databases (SAGA_DATA_DIR / DATABASE_URL, which must hold no orders yet), on free
ports, and drives it over HTTP like any client. At the end it reads the services' databases
directly: `sagaboard.consistency.check()`, plus totals computed independently of the checker.

Faults: duplicate delivery and crash points (`manage.py run --duplicate-rate/--crash`, counted
through the fault ledger every process appends to), the seed's currencyId 100/200 delays and the
failing currency 300, SIGKILL of a random service process every few seconds (supervisord restarts
it: autorestart=unexpected), and now and then a service stopped on purpose, which must stay
stopped until it is started again.
"""
from __future__ import annotations

import logging
import os
import random
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
from django.conf import settings
from django.core.management import call_command
from django.db.models import Count

from sagaboard import consistency, supervision
from sagaboard.kernel.events import EVENT_TYPES
from sagaboard.kernel.fields import exchanged, points
from sagaboard.kernel.models import DeadLetter, OutboxMessage
from services.deadline.models import Deadline
from services.monitor.models import EventLog
from services.order.models import APPROVED, PENDING, Order
from services.point.models import Account

# What the orders are made of: (currencyId, weight). 1 and 2 exchange normally; 300 fails at the
# exchange; 100 sleeps before the exchange's expiry check, 200 after it (the seed's faults).
CURRENCIES = (("1", 80), ("2", 8), ("300", 6), ("100", 3), ("200", 3))
STOPPED_STATES = {"STOPPED"}
REPORTED_VIOLATIONS = 30  # the first ones, then a count
POSTERS = 8  # concurrent POST /orders at most
START_TIMEOUT_SECONDS = 300  # generous: a loaded 2-core machine starts a dozen Django processes slowly


@dataclass
class SoakOptions:
    orders: int = 300
    rate: float = 20.0  # orders per second
    holders: int = 40
    naive_fraction: float = 0.05
    duplicate_rate: float = 0.1
    crashes: list[str] = field(default_factory=lambda: [
        "handler_mid:0.001", "handler_after_commit:0.001", "relay_before_publish:0.001", "relay_after_publish:0.001"])
    kill_every: float = 5.0  # seconds between SIGKILLs of a random service process (0: none)
    stop_every: int = 8  # every Nth chaos round stops a service on purpose instead (0: never)
    stop_seconds: float = 4.0
    time_limit: float = 180.0  # placing orders stops after this long, whatever is left
    settle_limit: float = 180.0
    replicas: int = 2
    partitions: int = 4
    deadline_seconds: float = 10.0
    seed: int | None = None


@dataclass
class Chaos:
    kills: Counter = field(default_factory=Counter)
    stops: int = 0
    stop_violations: list[str] = field(default_factory=list)
    restart_seconds: list[float] = field(default_factory=list)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float, interval: float = 0.25):
    """Poll until `predicate()` is truthy (returned) or the time is up (None)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    return None


class Soak:
    def __init__(self, options: SoakOptions, out=sys.stdout):
        self.o = options
        self.out = out
        self.random = random.Random(options.seed)
        self.data = settings.SAGA_DATA_DIR
        self.port = free_port()
        self.ledger = self.data / "faults.ledger"
        self.log_path = self.data / "soak-system.log"
        self.proc: subprocess.Popen | None = None
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=30)
        self.granted: Counter = Counter()
        self.placed: list[dict] = []
        self.post_errors: list[str] = []
        self.chaos = Chaos()
        self.placing = threading.Event()
        self.violations: list[str] = []

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    # --- the system ------------------------------------------------------------------------------
    def start(self) -> None:
        call_command("setupdb", verbosity=0)  # `manage.py run` does it too; the check below needs the tables
        if Order.objects.exists():
            raise RuntimeError("the soak needs fresh databases: this SAGA_DATA_DIR / DATABASE_URL already holds orders")
        self.ledger.unlink(missing_ok=True)
        env = {
            **os.environ,
            "PORT": str(self.port),
            "SAGA_BROKER_PORT": str(free_port()),
            "SAGA_REPLICAS": str(self.o.replicas),
            "SAGA_TOPIC_PARTITIONS": str(self.o.partitions),
            "SAGA_DEADLINE_SECONDS": str(self.o.deadline_seconds),
            "SAGA_FAULT_DELAY_SECONDS": str(self.o.deadline_seconds + 1),
            "PYTHONUNBUFFERED": "1",
        }
        command = [sys.executable, "manage.py", "run", "--replicas", str(self.o.replicas),
                   "--duplicate-rate", str(self.o.duplicate_rate), "--fault-ledger", str(self.ledger)]
        for crash in self.o.crashes:
            command += ["--crash", crash]
        self.data.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        if not wait_for(self.ready, START_TIMEOUT_SECONDS):
            raise RuntimeError(f"the system did not come up within {START_TIMEOUT_SECONDS} s; see {self.log_path}")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"`manage.py run` exited with {self.proc.returncode}; see {self.log_path}")
        try:
            services = self.http.get("/services").json()
        except (httpx.HTTPError, ValueError):
            return False
        everything = set(range(self.o.partitions))
        return all(s["state"] == "running" and {p for b in s["heartbeats"] for p in b["assignment"]} == everything
                   for s in services)

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
            self.violations.append("the system did not stop within 90 s of SIGTERM")
        self.http.close()

    # --- load ------------------------------------------------------------------------------------
    def grant_points(self) -> None:
        """Each holder gets a bit less than their orders will ask for, so some hit the point limit."""
        mean_amount = 500
        per_holder = max(1, self.o.orders // self.o.holders)
        for i in range(self.o.holders):
            holder = self.holder(i)
            point = int(per_holder * mean_amount * 0.8) + 1000
            response = self.http.post("/points", json={"userId": holder, "point": point})
            response.raise_for_status()
            self.granted[holder] += point

    def holder(self, i: int) -> str:
        naive_holders = max(1, round(self.o.holders * self.o.naive_fraction)) if self.o.naive_fraction else 0
        return f"naive-{i:03d}" if i < naive_holders else f"soak-{i:03d}"

    def place_orders(self) -> None:
        """At the rate asked for, or as fast as the web answers when it cannot keep up (at most
        POSTERS requests in flight), until every order is placed or the time limit is reached."""
        currencies, weights = zip(*CURRENCIES, strict=True)
        start = time.monotonic()
        in_flight = threading.BoundedSemaphore(POSTERS)
        pool = ThreadPoolExecutor(POSTERS)
        try:
            for i in range(self.o.orders):
                time.sleep(max(0.0, start + i / self.o.rate - time.monotonic()))
                while not in_flight.acquire(timeout=1):
                    pass
                if time.monotonic() - start > self.o.time_limit:
                    in_flight.release()
                    break
                holder = self.holder(self.random.randrange(self.o.holders))
                body = {"holderId": holder, "currencyId": self.random.choices(currencies, weights)[0],
                        "amount": self.random.randint(1, 1000),
                        "policy": "naive" if holder.startswith("naive-") else "safe"}
                pool.submit(self.post_order, body, in_flight)
        except BaseException:  # Ctrl-C / SIGTERM: drop what is queued, stop the system
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        finally:
            pool.shutdown(wait=True)  # every order submitted is posted
            self.placing.clear()

    def post_order(self, body: dict, in_flight: threading.BoundedSemaphore) -> None:
        try:
            response = self.http.post("/orders", json=body)
        except httpx.HTTPError as exc:
            self.post_errors.append(f"{body}: {exc!r}")
            return
        finally:
            in_flight.release()
        if response.status_code != 201:
            self.post_errors.append(f"{body}: {response.status_code} {response.text[:200]}")
            return
        self.placed.append(response.json())

    # --- chaos -----------------------------------------------------------------------------------
    def service_processes(self) -> list[dict]:
        return [p for p in supervision.processes() if p["group"] in supervision.PROGRAMS]

    def make_chaos(self) -> None:
        round_ = 0
        while self.placing.is_set():
            if self.placing_wait(self.o.kill_every * self.random.uniform(0.5, 1.5)):
                return
            round_ += 1
            if self.o.stop_every and round_ % self.o.stop_every == 0:
                self.stop_on_purpose(self.random.choice(supervision.PROGRAMS))
            else:
                self.kill_one()

    def placing_wait(self, seconds: float) -> bool:
        """Sleep while orders are being placed; True once placing has ended."""
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if not self.placing.is_set():
                return True
            time.sleep(0.05)
        return False

    def kill_one(self) -> None:
        running = [p for p in self.service_processes() if p["statename"] == "RUNNING" and p["pid"]]
        if not running:
            return
        victim = self.random.choice(running)
        try:
            os.kill(victim["pid"], signal.SIGKILL)
        except ProcessLookupError:
            return
        self.chaos.kills[victim["group"]] += 1
        killed_at = time.monotonic()

        def restarted():
            for p in self.service_processes():
                if p["name"] == victim["name"] and p["statename"] == "RUNNING" and p["pid"] != victim["pid"]:
                    return True
            return False

        if wait_for(restarted, 60, 0.1):
            self.chaos.restart_seconds.append(time.monotonic() - killed_at)
        else:
            self.violations.append(f"{victim['name']} was not restarted within 60 s of its SIGKILL")

    def stop_on_purpose(self, name: str) -> None:
        """Stop a service as an operator would: supervisord must leave it stopped until started."""
        supervision.stop(name)
        self.chaos.stops += 1
        end = time.monotonic() + self.o.stop_seconds
        while time.monotonic() < end:
            states = {p["name"]: p["statename"] for p in self.service_processes() if p["group"] == name}
            if not set(states.values()) <= STOPPED_STATES:
                self.chaos.stop_violations.append(f"{name} stopped on purpose came back: {states}")
                break
            time.sleep(0.2)
        supervision.start(name)

    # --- settle and check ------------------------------------------------------------------------
    def unsettled(self) -> dict[str, int]:
        """What is still moving: orders not terminal, events not published, deadlines armed for
        terminal orders, sagas whose last step has not been recorded."""
        pending = Order.objects.filter(status=PENDING).count()
        unpublished = sum(OutboxMessage.objects.using(s).filter(published_at__isnull=True).count() for s in settings.SERVICES)
        terminal = set(Order.objects.exclude(status=PENDING).values_list("id", flat=True))
        armed = Deadline.objects.filter(status=Deadline.ARMED, order_id__in=terminal).count() if terminal else 0
        return {"pending orders": pending, "unpublished events": unpublished, "armed deadlines": armed,
                "unfinished sagas": len(self.unfinished_sagas())}

    def unfinished_sagas(self) -> list[int]:
        last_step = defaultdict(set)
        for oid, event_type in EventLog.objects.filter(
                event_type__in=("OrderPlaced", "PointUseCompensated", "ExchangeCompensated")).values_list("order_id", "event_type"):
            last_step[oid].add(event_type)
        unfinished = []
        for oid, status, policy in Order.objects.exclude(status=PENDING).values_list("id", "status", "policy"):
            needed = "OrderPlaced" if status == APPROVED else "PointUseCompensated" if policy == "safe" else "ExchangeCompensated"
            if needed not in last_step[oid]:
                unfinished.append(oid)
        return unfinished

    def settle(self) -> tuple[float, dict[str, int]]:
        started = time.monotonic()
        state = wait_for(lambda: (s := self.unsettled()) and not any(s.values()) and s, self.o.settle_limit, 0.5)
        if state is None:
            state = self.unsettled()
            self.violations.append(f"not settled within {self.o.settle_limit:g} s: {state}")
        return time.monotonic() - started, state

    def check(self) -> dict:
        naive_orders = set(Order.objects.filter(policy="naive").values_list("id", flat=True))
        # every saga has ended; the checker judges an order once quiet for its grace period
        time.sleep(settings.SAGA_CONSISTENCY_GRACE_SECONDS + 0.5)
        anomalies = consistency.check()
        safe = self.safe_anomalies(anomalies, naive_orders)
        naive = [a for a in anomalies if a not in safe]
        for a in safe:
            self.violations.append(f"anomaly under safe: {a.rule} order={a.orderId} holder={a.holderId}: {a.evidence}")

        orders = list(Order.objects.values("id", "holder_id", "amount", "status", "policy"))
        statuses = Counter(o["status"] for o in orders)
        balance_errors = self.independent_totals(orders)
        lost = self.lost_events(orders)
        doubled = self.duplicate_effects()
        letters = {s: DeadLetter.objects.using(s).count() for s in settings.SERVICES}
        if len(orders) != len(self.placed):
            self.violations.append(f"{len(self.placed)} orders accepted by the API but {len(orders)} stored")
        if self.post_errors:
            self.violations.append(f"{len(self.post_errors)} orders refused by the API, e.g. {self.post_errors[0]}")
        if sum(letters.values()):
            self.violations.append(f"dead letters: {letters}")
        if self.chaos.stop_violations:
            self.violations += self.chaos.stop_violations
        deliveries = EventLog.objects.count()
        distinct = EventLog.objects.values("event_id").distinct().count()
        return {
            "statuses": statuses, "safe anomalies": len(safe), "naive anomalies": naive, "balance errors": balance_errors,
            "lost": lost, "doubled": doubled, "dead letters": sum(letters.values()),
            "redeliveries": deliveries - distinct, "events": distinct,
        }

    @staticmethod
    def safe_anomalies(anomalies, naive_orders) -> list:
        """Anomalies of safe orders and holders: naive orders may show the seed's known flaw."""
        return [a for a in anomalies if a.orderId not in naive_orders and not (a.orderId is None and (a.holderId or "").startswith("naive-"))]

    def independent_totals(self, orders: list[dict]) -> list[str]:
        """Each holder: balance == granted − approved amounts × rate (+ operators' adjustments),
        from what the soak itself granted and the orders, never from the point service's ledger."""
        approved = Counter()
        for o in orders:
            if o["status"] == APPROVED:
                approved[o["holder_id"]] += exchanged(o["amount"], settings.SAGA_EXCHANGE_RATE)
        adjusted = Counter()
        if "PointsAdjusted" in EVENT_TYPES:
            seen = set()
            for event_id, payload in EventLog.objects.filter(event_type="PointsAdjusted").values_list("event_id", "payload"):
                if event_id not in seen:
                    seen.add(event_id)
                    adjusted[payload["holderId"]] += points(payload["point"])
        errors = []
        for holder, balance in Account.objects.values_list("holder_id", "point"):
            expected = self.granted[holder] - approved[holder] + adjusted[holder]
            if balance != expected:
                error = f"{holder}: balance {balance} ≠ granted {self.granted[holder]} − approved {approved[holder]} + adjusted {adjusted[holder]}"
                errors.append(error)
                if not holder.startswith("naive-"):
                    self.violations.append("independent totals: " + error)
            if balance < 0 and not holder.startswith("naive-"):
                self.violations.append(f"{holder}: negative balance {balance}")
        return errors

    def lost_events(self, orders: list[dict]) -> int:
        """OrderCreated in the monitor's log without an order, or an order whose OrderCreated the
        relay marked published (or never wrote) but which never reached the log. Rows still
        waiting in the outbox are not lost: they count as unpublished (not settled)."""
        created = set(EventLog.objects.filter(event_type="OrderCreated").values_list("order_id", flat=True))
        ids = {o["id"] for o in orders}
        waiting = set(OutboxMessage.objects.using("order").filter(event_type="OrderCreated", published_at__isnull=True)
                      .values_list("order_id", flat=True))
        without_row, without_event = created - ids, ids - created - waiting
        if without_row or without_event:
            self.violations.append(f"lost events: OrderCreated without an order {sorted(without_row)[:10]}, "
                                   f"orders without OrderCreated {sorted(without_event)[:10]}")
        return len(without_row) + len(without_event)

    def duplicate_effects(self) -> int:
        """Each step of a saga happens once: one distinct event per (order, type). A handler that
        applied a redelivered event twice would have emitted a second event with a new eventId."""
        doubled = list(EventLog.objects.exclude(order_id=None).values("order_id", "event_type")
                       .annotate(n=Count("event_id", distinct=True)).filter(n__gt=1)[:20])
        if doubled:
            self.violations.append(f"steps taken more than once: {doubled}")
        return len(doubled)

    def injected(self) -> tuple[int, Counter]:
        duplicates, crashes = 0, Counter()
        if self.ledger.exists():
            for line in self.ledger.read_text().splitlines():
                kind, service, point, _pid = line.split()
                if kind == "duplicate":
                    duplicates += 1
                elif kind == "crash":
                    crashes[f"{service}.{point}"] += 1
        return duplicates, crashes

    # --- the whole run ---------------------------------------------------------------------------
    def run(self) -> int:
        logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request drowns the report
        signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM stops the system like Ctrl-C
        began = time.monotonic()
        self.say(f"soak: {self.o.orders} orders at {self.o.rate:g}/s, {self.o.replicas} processes per service, "
                 f"{self.o.partitions} partitions, {self.o.duplicate_rate:.0%} duplicates, crashes {','.join(self.o.crashes) or 'none'}, "
                 f"a SIGKILL every ~{self.o.kill_every:g} s, deadline {self.o.deadline_seconds:g} s; log {self.log_path}")
        try:
            self.start()
            self.say(f"system up in {time.monotonic() - began:.1f} s; granting points to {self.o.holders} holders")
            self.grant_points()
            self.placing.set()
            chaos = threading.Thread(target=self.make_chaos, name="chaos", daemon=True)
            if self.o.kill_every > 0:
                chaos.start()
            placing_began = time.monotonic()
            self.place_orders()
            placing_took = time.monotonic() - placing_began
            if chaos.is_alive():
                chaos.join(120)
            self.say(f"placed {len(self.placed)} orders in {placing_took:.1f} s; settling")
            settle_seconds, left = self.settle()
            figures = self.check()
        finally:
            self.stop()
        duplicates, crashes = self.injected()
        self.report(figures, duplicates, crashes, placing_took, settle_seconds, left, time.monotonic() - began)
        return 1 if self.violations else 0

    def report(self, f, duplicates, crashes, placing_took, settle_seconds, left, total) -> None:
        restarts = sorted(self.chaos.restart_seconds)
        lines = [
            "",
            "=== soak report ===",
            f"orders placed            {len(self.placed)} in {placing_took:.1f} s ({len(self.placed) / max(placing_took, 1e-9):.1f}/s), "
            f"{sum(1 for o in self.placed if o['policy'] == 'naive')} of them naive",
            f"approved                 {f['statuses'].get(APPROVED, 0)}",
            *(f"  {status:<24} {n}" for status, n in sorted(f["statuses"].items()) if status != APPROVED),
            f"events                   {f['events']} distinct, {f['redeliveries']} redelivered copies recorded by the monitor",
            f"duplicates injected      {duplicates}",
            f"crashes injected         {sum(crashes.values())}" + (f"  ({', '.join(f'{k} {v}' for k, v in sorted(crashes.items()))})" if crashes else ""),
            f"SIGKILLs                 {sum(self.chaos.kills.values())}" + (f"  ({', '.join(f'{k} {v}' for k, v in sorted(self.chaos.kills.items()))})" if self.chaos.kills else ""),
            "restart after SIGKILL    " + (f"p50 {restarts[len(restarts) // 2]:.1f} s, max {restarts[-1]:.1f} s" if restarts else "-"),
            f"stopped on purpose       {self.chaos.stops}, stayed stopped: {'yes' if not self.chaos.stop_violations else 'NO'}",
            f"anomalies (safe)         {f['safe anomalies']}",
            f"anomalies (naive)        {len(f['naive anomalies'])}" + (f"  ({', '.join(f'{k} {v}' for k, v in sorted(Counter(a.rule for a in f['naive anomalies']).items()))}; the seed's known flaw)" if f["naive anomalies"] else ""),
            f"balance errors           {len(f['balance errors'])}" + ("  (naive holders only)" if f["balance errors"] and all(e.startswith("naive-") for e in f["balance errors"]) else ""),
            f"lost events              {f['lost']}",
            f"steps taken twice        {f['doubled']}",
            f"dead letters             {f['dead letters']}",
            f"pending                  {left['pending orders']} orders, {left['unpublished events']} unpublished events, {left['unfinished sagas']} unfinished sagas",
            f"time to settle           {settle_seconds:.1f} s after the last order",
            f"total                    {total:.1f} s",
            f"violations               {len(self.violations)}",
            *(f"  - {v}" for v in self.violations[:REPORTED_VIOLATIONS]),
            *([f"  - … and {len(self.violations) - REPORTED_VIOLATIONS} more"] if len(self.violations) > REPORTED_VIOLATIONS else []),
            "RESULT: " + ("PASS" if not self.violations else "FAIL"),
        ]
        self.say("\n".join(lines))
