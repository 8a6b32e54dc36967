"""Doorbells: how a Sagaboard process that published wakes the idle consumers on the same machine.

Why: the embedded broker (Tansu 0.6.0) answers a fetch that is waiting for data only after a
fraction of its wait, not when the data arrives (one bare consumer: 500 ms wait → p50 37 ms, max
195 ms per hop; 10 ms wait → fast, but a few percent of a core per idle consumer, plus the
broker's). So a consumer with nothing to do *parks*: it pauses its partitions (no fetches at all)
until a bell rings or a slow safety look is due, then fetches with the short wait again
(sagaboard/kernel/consumer.py, `Parking`). Every publisher of the saga topic in Sagaboard (the
services' after-commit publishers and relays, the web process) rings after the broker acknowledged
its records, so a parked consumer hears of them at once.

A bell is a Unix datagram socket per consuming process in one directory per Sagaboard instance
(`SAGA_DATA_DIR/doorbells`, or a short directory under the system's temporary directory named by
a hash of SAGA_DATA_DIR when that path would be too long for a socket): two instances never ring
each other's bells. Ringing is one `sendto` of one byte per bell, non-blocking; a full bell (its
owner is busy, not parked) or a dead one is skipped, and a dead one's socket file removed. A bell
lost for any reason costs latency, never an event: the safety look (SAGA_IDLE_POLL_MS) finds it.
Processes on other machines (an external Kafka) are not rung; there, consumers do not park, since
a real Kafka's long poll answers as soon as data arrives.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import os
import socket
import tempfile
import time
from pathlib import Path

MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes on Linux; leave room
LISTING_SECONDS = 0.5  # how long a ringer trusts its listing of the bells


def directory(data_dir: Path) -> Path:
    """The bells' directory of the instance whose data directory is `data_dir`."""
    preferred = Path(os.path.abspath(data_dir)) / "doorbells"
    if len(str(preferred)) + 40 <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"sagaboard-doorbells-{digest}"


class Doorbell:
    """One consuming process's bell. `wait(timeout)` returns True when it rang (and empties it)."""

    def __init__(self, where: Path, name: str):
        self.path = where / f"{name}-{os.getpid()}.bell"
        self.sock: socket.socket | None = None

    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        sock.bind(str(self.path))
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None
        self.path.unlink(missing_ok=True)

    def drain(self) -> int:
        """Empty the bell without waiting; how many rings it held."""
        rings = 0
        while True:
            try:
                self.sock.recv(64)
            except (BlockingIOError, InterruptedError):
                return rings
            rings += 1

    async def wait(self, timeout: float) -> bool:
        """Wait until the bell rings or `timeout` seconds pass; True if it rang."""
        if self.drain():
            return True
        loop = asyncio.get_running_loop()
        rang = loop.create_future()
        loop.add_reader(self.sock.fileno(), lambda: rang.done() or rang.set_result(True))
        try:
            await asyncio.wait_for(rang, timeout)
        except TimeoutError:
            pass
        finally:
            loop.remove_reader(self.sock.fileno())
        return self.drain() > 0


class Ringer:
    """Rings every bell of an instance (from any thread): one datagram each, never blocking."""

    def __init__(self, where: Path):
        self.where = where
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.bells: list[str] = []
        self.listed_at = 0.0

    def ring(self) -> int:
        """Ring them all; how many were rung."""
        now = time.monotonic()
        if now - self.listed_at > LISTING_SECONDS:
            try:
                self.bells = [entry.path for entry in os.scandir(self.where) if entry.name.endswith(".bell")]
            except FileNotFoundError:
                self.bells = []
            self.listed_at = now
        rung = 0
        for bell in self.bells:
            try:
                self.sock.sendto(b"!", bell)
                rung += 1
            except (BlockingIOError, InterruptedError):
                pass  # full: its owner is busy reading, not parked
            except OSError as exc:  # its owner is gone
                if exc.errno in (errno.ECONNREFUSED, errno.ENOENT):
                    try:
                        os.unlink(bell)
                    except OSError:
                        pass
                    self.listed_at = 0.0
        return rung

    def close(self) -> None:
        self.sock.close()
