"""Runs the whole of Sagaboard as real processes for a test: `manage.py run` (supervisord with
the embedded broker, every service and the web server) in a temporary data directory, on free
ports of 127.0.0.1, against SQLite files or fresh PostgreSQL databases (when DATABASE_URL is set)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("order", "exchange", "point", "deadline", "monitor")
TERMINAL_PREFIXES = ("APPROVED", "REJECTED")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listening(port: int) -> bool:
    """Whether something on 127.0.0.1 takes TCP connections at `port` now."""
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_until(predicate, timeout: float, interval: float = 0.1, what: str = "condition"):
    """Poll `predicate` until it returns something truthy; bounded in time."""
    end = time.monotonic() + timeout
    last = None
    while time.monotonic() < end:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def postgres_url(name: str, server: str | None = None) -> str | None:
    """The URL of database `name` on the PostgreSQL server of `server` (default DATABASE_URL)."""
    base = os.environ.get("DATABASE_URL", "") if server is None else server
    if not base.startswith("postgres"):
        return None
    return base.rsplit("/", 1)[0] + "/" + name


def drop_postgres_databases(prefix: str, server: str | None = None) -> None:
    import psycopg

    url = postgres_url("postgres", server)
    with psycopg.connect(url, autocommit=True) as conn:
        names = [r[0] for r in conn.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", [prefix + "%"])]
        for name in names:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class System:
    def __init__(self, tmp: Path, replicas: int = 1, broker: str | None = None, database_url: str | None = None,
                 **env: str):
        """`broker`: the address of a Kafka-protocol broker started elsewhere, given to every process
        in KAFKA_BOOTSTRAP_SERVERS exactly as a real Kafka's would be, so nothing embedded is
        launched; the broker may be shared, so the system gets a topic of its own on it.
        `database_url`: the PostgreSQL server to create this system's databases on, instead of
        DATABASE_URL's (None: DATABASE_URL's, or SQLite files when that is unset)."""
        self.tmp = tmp
        self.replicas = replicas
        self.port = free_port()
        self.broker_port = free_port()
        self.db_prefix = f"sb_{uuid.uuid4().hex[:10]}"
        self.env = {
            **os.environ,
            "PORT": str(self.port),
            "SAGA_BROKER_PORT": str(self.broker_port),
            "SAGA_DATA_DIR": str(tmp / "data"),
            "SAGA_SUPERVISOR_SOCKET": f"/tmp/{self.db_prefix}.sock",
            "SAGA_DEADLINE_SECONDS": "2",
            "SAGA_FAULT_DELAY_SECONDS": "3",
            "SAGA_CONSISTENCY_GRACE_SECONDS": "1",
            "SAGA_REPLICAS": str(replicas),
            "PYTHONUNBUFFERED": "1",
        }
        self.env.pop("KAFKA_BOOTSTRAP_SERVERS", None)
        if broker:
            self.env["KAFKA_BOOTSTRAP_SERVERS"] = broker
            self.env["SAGA_TOPIC"] = f"{self.db_prefix}.saga"
        pg = postgres_url(self.db_prefix, database_url)
        if pg:
            self.env["DATABASE_URL"] = pg
        self.env.update(env)
        self.http = httpx.Client(base_url=f"http://127.0.0.1:{self.port}", timeout=10)
        self.proc: subprocess.Popen | None = None
        self.log_path = tmp / "system.log"

    # --- lifecycle -------------------------------------------------------------------------------
    def start(self, timeout: float = 90) -> System:
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(
            [sys.executable, "manage.py", "run"], cwd=ROOT, env=self.env,
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        wait_until(self.ready, timeout, 0.25, "every service to run and own its partitions")
        return self

    def ready(self, only: str | None = None) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"sagaboard exited with {self.proc.returncode}; log:\n{self.tail()}")
        try:
            services = self.http.get("/services").json()
        except httpx.HTTPError:
            return False
        partitions = int(self.env.get("SAGA_TOPIC_PARTITIONS", "3"))
        for s in services:
            if only and s["name"] != only:
                continue
            if s["state"] != "running":
                return False
            owned = {p for beat in s["heartbeats"] for p in beat["assignment"]}
            if owned != set(range(partitions)):
                return False
        return True

    def pids(self) -> list[int]:
        out = subprocess.run(["pgrep", "-s", str(self.proc.pid)], capture_output=True, text=True).stdout
        return [int(p) for p in out.split()]

    def stop(self) -> None:
        if self.proc is None:
            return
        group = self.pids()
        stuck = False
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                # supervisord gives every program a process group of its own: killing supervisord's
                # group would orphan them, so kill every process of the session, then clean up
                stuck = True
                for pid in {self.proc.pid, *group, *self.pids()}:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        wait_until(lambda: not any(_alive(p) for p in group), 10, what="every process of the system to exit")
        self.http.close()
        self.log.close()
        if "DATABASE_URL" in self.env and self.env["DATABASE_URL"].startswith("postgres"):
            drop_postgres_databases(self.db_prefix, self.env["DATABASE_URL"])
        if stuck:
            raise AssertionError(f"sagaboard did not stop within 60 s of SIGTERM; log:\n{self.tail()}")

    def tail(self, lines: int = 80) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def supervisorctl(self, *args: str) -> str:
        conf = Path(self.env["SAGA_DATA_DIR"]) / "supervisord.conf"
        return subprocess.run([str(Path(sys.executable).with_name("supervisorctl")), "-c", str(conf), *args],
                              capture_output=True, text=True, timeout=60).stdout

    def restart_broker(self, timeout: float = 30) -> None:
        """Restart the embedded broker and wait until it takes connections again. supervisord calls
        it running after `startsecs` (1 s), which on a loaded machine can come before Tansu listens."""
        out = self.supervisorctl("restart", "broker")
        assert "broker: started" in out, out
        wait_until(lambda: listening(self.broker_port), timeout, 0.1, f"the broker to listen on port {self.broker_port} again")

    def manage(self, *args: str) -> str:
        """A management command against this system's databases (createsuperuser, drf_create_token,
        shell -c ...); returns what it printed."""
        done = subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=self.env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (args, done.stdout, done.stderr)
        return done.stdout

    def stop_service(self, name: str) -> None:
        self.supervisorctl("stop", f"{name}:*" if self.replicas > 1 else name)

    def start_service(self, name: str) -> None:
        self.supervisorctl("start", f"{name}:*" if self.replicas > 1 else name)
        wait_until(lambda: self.ready(name), 60, 0.25, f"{name} to run again")

    # --- API ---------------------------------------------------------------------------------------
    def get(self, path: str, **params):
        response = self.http.get(path, params=params)
        response.raise_for_status()
        return response.json()

    def post(self, path: str, body: dict, expect: int = 201):
        response = self.http.post(path, json=body)
        assert response.status_code == expect, (response.status_code, response.text)
        return response.json()

    def grant(self, holder: str, point: int) -> dict:
        return self.post("/points", {"userId": holder, "point": point})

    def order(self, holder: str, amount: int, currency="1", policy="safe") -> dict:
        return self.post("/orders", {"holderId": holder, "currencyId": currency, "amount": amount, "policy": policy})

    def balance(self, holder: str) -> Decimal:
        """The holder's points (the API's exact decimal string, as a Decimal)."""
        return Decimal(self.get(f"/points/{holder}")["point"])

    def event_types(self, order_id: int) -> list[str]:
        return [e["eventType"] for e in self.get("/events", orderId=order_id)]

    def wait_status(self, order_id: int, status: str, timeout: float = 30) -> dict:
        return wait_until(lambda: (o := self.get(f"/orders/{order_id}"))["status"] == status and o, timeout, 0.1,
                          f"order {order_id} to be {status}")

    def wait_outcome(self, order_id: int, service: str, event_type: str, outcome: str, timeout: float = 10) -> dict:
        def found():
            for o in self.get("/outcomes", orderId=order_id):
                if (o["service"], o["eventType"], o["outcome"]) == (service, event_type, outcome):
                    return o
            return None

        return wait_until(found, timeout, 0.1, f"{service} to record {outcome} {event_type} of order {order_id}")

    def wait_until_armed(self, order_ids, timeout: float = 10) -> None:
        def armed():
            states = {d["orderId"]: d["status"] for d in self.get("/deadlines")}
            return all(states.get(oid) == "armed" for oid in order_ids)

        wait_until(armed, timeout, 0.05, f"deadlines of {order_ids} to be armed")

    def wait_consistent(self, timeout: float = 10) -> bool:
        """True once the checker reports nothing (settled orders pass the grace period first)."""
        wait_until(lambda: self.get("/consistency")["count"] == 0, timeout, 0.2, "no anomalies")
        return True

    def settled(self, order_id: int, timeout: float = 30) -> dict:
        """Wait until the order is terminal and its saga has ended (OrderPlaced, or the last
        compensation step), then return the order."""

        def done():
            order = self.get(f"/orders/{order_id}")
            if not order["status"].startswith(TERMINAL_PREFIXES):
                return None
            types = self.event_types(order_id)
            last_needed = "OrderPlaced" if order["status"] == "APPROVED" else "PointUseCompensated" if order["policy"] == "safe" else "ExchangeCompensated"
            return order if last_needed in types else None

        try:
            return wait_until(done, timeout, 0.1, f"order {order_id} to settle")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{self.diagnose(order_id)}") from None

    def diagnose(self, order_id: int) -> str:
        """What a test that waited in vain for an order prints: the order, its logged events, how
        each service handled them, each process's lag, and the log's warnings and the lines that
        name the order (a CI failure leaves nothing else to read)."""
        order = self.get(f"/orders/{order_id}")
        outcomes = [(o["service"], o["eventType"], o["outcome"]) for o in self.get("/outcomes", orderId=order_id)]
        services = [{k: s.get(k) for k in ("name", "state", "lag", "handled", "lastEvent")}
                    for s in self.get("/dashboard/services.json")["services"]]
        letters = len(self.get("/dead-letters"))
        lines = [line for line in self.log_path.read_text(errors="replace").splitlines()
                 if f"order {order_id}" in line or " WARNING " in line or " ERROR " in line or " CRITICAL " in line]
        return (f"order: {order}\nevents: {self.event_types(order_id)}\noutcomes: {outcomes}\nservices: {services}\n"
                f"dead letters: {letters}\nlog (warnings, and lines naming the order; last 60):\n" + "\n".join(lines[-60:]))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for our purposes
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False
