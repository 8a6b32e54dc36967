"""Fault injection, configured by environment: duplicate deliveries, crashes at named points,
and interruptible delays (the seed's currencyId 100/200 sleeps).

SAGA_FAULT_DUPLICATE_RATE=0.1          publish 10% of events twice
SAGA_FAULT_CRASH=handler_after_commit:0.05,point.relay_after_publish:0.02
                                       os._exit(70) at that point with that probability
                                       (prefix a point with a service name to crash only it)
SAGA_FAULT_LEDGER=var/faults.ledger    append one line per injected fault (how the soak counts them)
Crash points: relay_before_publish, relay_after_publish (before the rows are marked published),
handler_after_commit (after the database commit, before the offset commit), handler_mid
(inside the handler's transaction, so it rolls back).
"""
from __future__ import annotations

import asyncio
import logging
import os
import random
import sys
import threading
import time

log = logging.getLogger(__name__)

CRASH_POINTS = ("relay_before_publish", "relay_after_publish", "handler_after_commit", "handler_mid")
shutting_down = threading.Event()


class ShuttingDown(Exception):
    """A delay was cut short because the process is stopping; the event stays unacknowledged."""


def parse_crashes(spec: str) -> dict[str, float]:
    crashes = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, _, rate = item.partition(":")
        if name.rpartition(".")[2] not in CRASH_POINTS:
            raise ValueError(f"SAGA_FAULT_CRASH: unknown crash point {name!r}; known: {', '.join(CRASH_POINTS)}")
        crashes[name] = float(rate or 1.0)
    return crashes


DUPLICATE_RATE = float(os.environ.get("SAGA_FAULT_DUPLICATE_RATE", "0") or 0)
CRASHES = parse_crashes(os.environ.get("SAGA_FAULT_CRASH", ""))
LEDGER = os.environ.get("SAGA_FAULT_LEDGER", "")
service = ""  # set by the running service, for service-scoped crash points


def record(kind: str, point: str = "") -> None:
    """Append `kind service point pid` to the ledger: one write() on an O_APPEND file, so lines
    from many processes never mix, and it is in the file before an os._exit that follows."""
    if not LEDGER:
        return
    fd = os.open(LEDGER, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{kind} {service or '-'} {point or '-'} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def duplicate() -> bool:
    if DUPLICATE_RATE and random.random() < DUPLICATE_RATE:
        record("duplicate")
        return True
    return False


def crash_point(name: str) -> None:
    """os._exit(70) here with the configured probability, in a service process only: the web
    process publishes what its requests commit too, but crashing it would only fail requests."""
    if not service:
        return
    rate = CRASHES.get(f"{service}.{name}", CRASHES.get(name))
    if rate and random.random() < rate:
        log.warning("fault injection: crashing at %s", name)
        record("crash", name)
        sys.stderr.flush()
        os._exit(70)


async def sleep(seconds: float) -> None:
    """Sleep on the event loop (never holding a thread or a transaction); cut short by a stop."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if shutting_down.is_set():
            raise ShuttingDown()
        await asyncio.sleep(min(left, 0.1))
    if shutting_down.is_set():
        raise ShuttingDown()
