"""Doorbells: how a Sagaboard process that published wakes the consumers on the same machine, so
that they fetch only when there is something to fetch.

Why: the embedded broker (Tansu 0.6.0) answers a fetch that waits for data only after a fraction
of its wait, not when the data arrives (one bare consumer: 500 ms wait → p50 37 ms, max 195 ms per
hop), and it works while a fetch waits: measured here, an empty fetch costs it about 0.11 ms
with no wait, 0.26 ms with a 1 ms wait, 0.6 ms with 10 ms and 1 ms with 50 ms. Ten-millisecond
polls by six consumers took a fifth of a core with nothing to do. So a consumer *parks* (`Parking`):
its partitions stay paused, and it fetches only when a bell rings for an event type it handles,
when its last fetch brought records (there may be more), or when a slow safety look is due
(SAGA_IDLE_POLL_MS). Each fetch has a short wait (SAGA_KAFKA_FETCH_MAX_WAIT_MS); while records keep
coming, fetches are about SAGA_FETCH_LINGER_MS apart, so under load each carries many records (the
broker's work and each service's transaction are per fetch, not per record), while the first
fetch after a park goes at once, and so does one rung while fetches are sparse (FETCH_BURST), so a
lone order is not delayed. Every publisher of the saga topic in Sagaboard (the services'
after-commit publishers and relays, the web process) rings after the broker acknowledged its
records, naming the event types it published (`type_ring`).

A bell is a Unix datagram socket per consuming process in one directory per Sagaboard instance
(`SAGA_DATA_DIR/doorbells`, or a short directory under the system's temporary directory named by
a hash of SAGA_DATA_DIR when that path would be too long for a socket): two instances never ring
each other's bells. Ringing is one `sendto` of two bytes (the types' mask) per bell that wants one
of the types (its file name says which: `bell_name`), non-blocking; a full bell (its owner is busy,
not parked) or a dead one is skipped, and a dead one's socket file removed. A bell lost for any
reason costs latency, never an event: the safety look (SAGA_IDLE_POLL_MS) finds it.
A park also ends when a fetch sent during the looks is answered late with records, or with a high
watermark beyond the consumer's position (`late_answer`): a busy broker's answer can come after
the looks a ring buys, and it would otherwise wait in aiokafka's buffer for the safety look
(measured: about 300 such parks in 30 s at 400 orders/s).
Processes on other machines (an external Kafka) are not rung; there, consumers do not park
(SAGA_DOORBELLS is off), since a real Kafka's long poll answers as soon as data arrives: they
fetch continuously with fetch_max_wait_ms as Kafka documents it.
"""
from __future__ import annotations

import asyncio
import errno
import hashlib
import logging
import os
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from .events import EVENT_TYPES
from .gaps import OffsetGaps, known_positions

MAX_SOCKET_PATH = 100  # AF_UNIX paths are limited to 107 bytes on Linux; leave room
LISTING_SECONDS = 0.5  # how long a ringer trusts its listing of the bells
LOOKS_AFTER_A_RING = 2  # more looks a consumer woken by a bell takes before it parks again
MAX_FETCH_WAIT_MS = 1000  # how far Parking.adapt_wait() may widen a consumer's fetch wait
POSITION_LOOK_SECONDS = 0.05  # how often a consumer looks while no partition's position is known yet
# A look no bell asked for (the safety look, every SAGA_IDLE_POLL_MS) lasts one fetch wait and this
# much more: long enough for one fetch's answer, where a rung look takes several. Measured (60 s of
# an idle system, 5 services): the safety looks were 2.2 of its 5.3 % of a core, most of it the
# embedded broker answering the four fetches of each 25 ms look.
QUIET_LOOK_MARGIN_MS = 5  # measured: about 2 fetches per safety look instead of 4; idle 5.3 → 4.3 %
# A ring ends the pause between two looks while the consumer has taken fewer than one early look
# (sooner than a linger after the previous one) per EARLY_LOOK_SECONDS on average, with up to this
# many in a burst (a token bucket): a lone order's event is fetched when it is rung, not after the
# pause that followed the previous record, and under load a consumer looks about once per linger
# plus once per EARLY_LOOK_SECONDS, however often it is rung. Traced, 27
# orders one at a time: a hop's ack → look 5.1–5.4 ms → 0.9–1.9 ms (README, "A lone order's hops").
FETCH_BURST = 4
# One credit of that bucket comes back this often (or every linger, when SAGA_FETCH_LINGER_MS is
# shorter): a lone order's stream rings each consumer about once per saga (60–90 ms apart, one at
# a time), so its rings end the pause, while under load a consumer looks about once per linger
# plus once per this, however often it is rung.
EARLY_LOOK_SECONDS = 0.05
# The same for a consumer off the saga's critical path (the deadline's, the monitor's: kernel/
# service.py, Service.critical_path), whose linger is SAGA_OFF_PATH_FETCH_LINGER_MS: the burst of
# FETCH_BURST still takes a lone order's few rings at once (its timeline's "armed", "disarmed" and
# event-log rows come when they happened), but under load, where a consumer waits out each linger
# and then spends the credits that came back meanwhile, it looks 1 + 2 times per 500 ms linger
# (about 6 a second) where a hop looks 1 + 2 times per 100 ms (README, "Off the critical path").
OFF_PATH_EARLY_LOOK_SECONDS = 0.25
# A ring names the event types published, as a bitmask over EVENT_TYPES (kernel/events.py), so a
# consumer is woken only by records it handles: every publish rang all five consumers, and under
# a lone order's stream each ring cost a look and a credit of FETCH_BURST (README, "Typed rings
# and a longer linger").
TYPE_BITS = {name: 1 << n for n, name in enumerate(EVENT_TYPES)}
MASK_BYTES = max(2, (len(TYPE_BITS) + 7) // 8)  # never 1 byte: that is EVERY_TYPE
EVERY_TYPE = b"!"  # a ring that names no type (one byte): every consumer takes it
WANTS = ".wants-"  # in a bell's file name, before the mask of the event types it wants (bell_name)

log = logging.getLogger(__name__)


def type_mask(event_types: Iterable[str]) -> int:
    """The bits of `event_types` (names of kernel/events.py's EVENT_TYPES). ValueError for a name
    that is not one."""
    mask = 0
    for name in event_types:
        try:
            mask |= TYPE_BITS[name]
        except KeyError:
            raise ValueError(f"unknown event type {name!r}") from None
    return mask


def type_ring(event_types: Iterable[str]) -> bytes:
    """The datagram that rings for `event_types`; EVERY_TYPE if one of them is not a known type."""
    try:
        return type_mask(event_types).to_bytes(MASK_BYTES, "little")
    except ValueError:
        return EVERY_TYPE


def directory(data_dir: Path) -> Path:
    """The bells' directory of the instance whose data directory is `data_dir`."""
    preferred = Path(os.path.abspath(data_dir)) / "doorbells"
    if len(str(preferred)) + 40 <= MAX_SOCKET_PATH:
        return preferred
    digest = hashlib.sha1(str(preferred).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"sagaboard-doorbells-{digest}"


def bell_name(name: str, pid: int, wants: int | None) -> str:
    """The file name of a bell: `{name}-{pid}.bell`, or `{name}-{pid}.wants-{mask in hex}.bell`
    when its consumer wants only some event types, so that a ringer sends it only the rings it
    takes (`wanted_by`)."""
    return f"{name}-{pid}.bell" if wants is None else f"{name}-{pid}{WANTS}{wants:x}.bell"


def wanted_by(file_name: str) -> int | None:
    """The mask of event types a bell's file name says it wants (`bell_name`); None: every ring
    (no mask in the name, or one this version cannot read)."""
    stem, found, mask = file_name.removesuffix(".bell").rpartition(WANTS)
    if not found or not stem:
        return None
    try:
        return int(mask, 16)
    except ValueError:
        return None


class Doorbell:
    """One consuming process's bell. `wait(timeout)` returns True when it rang (and empties it).
    `wants`: the event types the consumer handles, as a mask (`type_mask`); None: every ring. The
    mask is in the bell's file name too (`bell_name`): ringers send it nothing else."""

    def __init__(self, where: Path, name: str, wants: int | None = None):
        self.path = where / bell_name(name, os.getpid(), wants)
        self.sock: socket.socket | None = None
        self.wants = wants

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
        """Empty the bell without waiting; how many of the rings it held were for this consumer
        (`takes`)."""
        rings = 0
        while True:
            try:
                rings += self.takes(self.sock.recv(64))
            except (BlockingIOError, InterruptedError):
                return rings

    def takes(self, ring: bytes) -> bool:
        """Whether a ring is for this consumer: it names an event type the consumer wants (or the
        consumer wants all), or it names none (EVERY_TYPE, or bytes this version cannot read)."""
        if self.wants is None or len(ring) != MASK_BYTES:
            return True
        return bool(int.from_bytes(ring, "little") & self.wants)

    async def wait(self, timeout: float) -> bool:
        """Wait until the bell rings for this consumer or `timeout` seconds pass; True if it rang.
        Rings for event types it does not want are taken off the bell and waited past."""
        if self.drain():
            return True
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        readable = asyncio.Event()
        fd = self.sock.fileno()  # kept: close() may come while this waits
        loop.add_reader(fd, readable.set)
        try:
            while (left := deadline - loop.time()) > 0:
                try:
                    await asyncio.wait_for(readable.wait(), left)
                except TimeoutError:
                    return False
                readable.clear()
                if self.sock is None:
                    return False
                if self.drain():
                    return True
            return False
        finally:
            loop.remove_reader(fd)


class Ringer:
    """Rings the bells of an instance (from any thread): one datagram to each bell that wants one
    of the event types published (`wanted_by`), never blocking.

    Why only those: a bell holds at most net.unix.max_dgram_qlen datagrams (10 by default) while
    its consumer is busy, and a ringer skips a full one. When every publish rang every bell, a
    busy consumer's bell filled with rings for types it skips, the one ring it wanted was
    dropped, and the record waited for the safety look, 2 s (README, "Lost rings and late empty
    answers"). A full bell now holds only rings its consumer takes, so it wakes at once."""

    def __init__(self, where: Path):
        self.where = where
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        self.bells: list[tuple[str, int | None]] = []  # (path, the types it wants: None for all)
        self.listed_at = 0.0

    def ring(self, event_types: Iterable[str] | None = None) -> int:
        """Ring the bells that want one of `event_types` (None: not said, every bell is rung and
        every consumer takes it); how many were rung."""
        ring = EVERY_TYPE if event_types is None else type_ring(event_types)
        mask = None if ring == EVERY_TYPE else int.from_bytes(ring, "little")
        now = time.monotonic()
        if now - self.listed_at > LISTING_SECONDS:
            try:
                self.bells = [(entry.path, wanted_by(entry.name)) for entry in os.scandir(self.where)
                              if entry.name.endswith(".bell")]
            except FileNotFoundError:
                self.bells = []
            self.listed_at = now
        rung = 0
        for bell, wants in self.bells:
            if mask is not None and wants is not None and not mask & wants:
                continue
            try:
                self.sock.sendto(ring, bell)
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


class Parking:
    """The fetch cycle of one consumer: `fetch(consumer, stopping)` returns the next records.

    With doorbells (`enabled`), the consumer's partitions are paused between fetches: a fetch
    happens when the bell rang, when the previous one brought records, when `changed` is set (new
    partitions) or every `poll_ms`. A fetch follows the previous one after `linger_ms`, or sooner
    when a ring comes while the consumer has taken fewer than one such early look per `spacing`
    lately (up to FETCH_BURST at once: `refill`), so a lone record is fetched when it is rung and a
    stream of them about once per linger. Only rings for the event types in `wants` (None: all)
    count. A look no bell asked for (every `poll_ms`: the safety look) lasts one fetch wait plus
    QUIET_LOOK_MARGIN_MS, about two fetches, where a rung look lasts several waits. Without,
    it is aiokafka's continuous fetching (a real Kafka's long poll). Either way each partition's
    records come in offset order with no gap: a fetch is cut at a gap and the gap read again
    (`gaps`, sagaboard/kernel/gaps.py: the embedded broker's race between producers)."""

    def __init__(self, where: Path, name: str, enabled: bool, linger_ms: int, poll_ms: int, fetch_wait_ms: int,
                 wants: Iterable[str] | None = None, early_look_seconds: float = EARLY_LOOK_SECONDS):
        self.name = name
        self.enabled = enabled
        self.bell = Doorbell(where, name, None if wants is None else type_mask(wants)) if enabled else None
        self.linger = linger_ms / 1000
        self.spacing = min(self.linger, early_look_seconds)  # the token bucket's refill interval (`refill`)
        self.poll = poll_ms / 1000
        self.fetch_wait_ms = fetch_wait_ms  # the configured wait: adapt_wait() narrows back down to it
        # How long one look waits for records. While the partitions are resumed, aiokafka sends
        # the next fetch as soon as one comes back empty, so a long look is many fetches: a few
        # fetch waits is enough (a look that misses a slow answer leaves it buffered for the next).
        self.timeout_ms = self.look_ms(fetch_wait_ms) if enabled else max(100, 2 * fetch_wait_ms)
        self.widest = fetch_wait_ms
        self.wait_ms = fetch_wait_ms  # each fetch's wait now (adapt_wait)
        self.quiet_looks = 0  # safety looks that found no record
        self.hot = True  # the last fetch brought records: fetch again without waiting for a bell
        self.promised = 0  # looks left that a ring promised records for
        self.fetched_at = 0.0
        self.credit = float(FETCH_BURST)  # looks a ring may still start before the linger ends
        self.credit_at = 0.0  # time.monotonic() the credit was counted at
        self.parked = 0  # how often it waited for a bell
        self.parked_since: float | None = None  # time.time() it began waiting for a bell, None while fetching
        self.late_answers = 0  # parks ended by a fetch answered after its look (records, no ring)
        self.changed = asyncio.Event()
        self.gaps = OffsetGaps(name)  # every fetch is cut at a gap in a partition's offsets (gaps.py)

    def open(self) -> None:
        if self.bell is not None:
            self.bell.open()

    def close(self) -> None:
        if self.bell is not None:
            self.bell.close()

    async def fetch(self, consumer, stopping: asyncio.Event, max_records: int = 5000) -> dict:
        """The next records ({TopicPartition: [records]}); empty when stopping, when there are no
        partitions, or when a look found nothing."""
        if not self.enabled:
            assigned = consumer.assignment()
            if not assigned:
                await self._wait_for(stopping, self.changed, timeout=0.2)
                return {}
            await self.resume_known(consumer)
            return self.gaps.cut(consumer, await consumer.getmany(timeout_ms=self.timeout_ms, max_records=max_records))
        assigned = consumer.assignment()
        # an answer that came since the last look (with records: buffered; without, saying
        # records wait: behind) is no reason to park: late_answer() watches only fetches under way
        if not assigned or (not self.hot and not buffered(consumer) and not await behind(consumer)):
            self.parked += 1
            self.parked_since = self.parked_since or time.time()
            rang = await self._wait_for(stopping, self.changed, bell=True, timeout=self.poll, consumer=consumer,
                                        empty_too=True)
            assigned = consumer.assignment()
            if not assigned or stopping.is_set():
                return {}
            # a bell promises records: if the first look misses them (a busy broker's answer can
            # come after the look ends; it stays buffered), look again before parking
            self.promised = LOOKS_AFTER_A_RING if rang else 0
            quiet = not rang  # a safety look (or new partitions): one fetch's answer will do
        else:  # busy: let records gather (waking from a park fetches at once, for latency)
            quiet = False
            pause = self.fetched_at + self.linger - time.monotonic()
            if pause > 0 and self.refill() < 1:  # many looks lately: let records gather
                await self._wait_for(stopping, timeout=pause)
            elif pause > 0 and await self._wait_for(stopping, bell=True, timeout=pause, consumer=consumer):
                self.promised = LOOKS_AFTER_A_RING  # rung during the pause: look now
        known, assigned = await self.resume_known(consumer)
        if not known:
            self.hot = True
            await self._wait_for(stopping, self.changed, timeout=POSITION_LOOK_SECONDS)
            return {}
        now = time.monotonic()
        early = now - self.fetched_at < self.linger  # only a look sooner than a linger takes a credit
        self.fetched_at = now
        self.credit = max(0.0, self.refill() - early)
        try:
            look_ms = self.wait_ms + QUIET_LOOK_MARGIN_MS if quiet else self.timeout_ms
            batches = await consumer.getmany(timeout_ms=look_ms, max_records=max_records)
        finally:
            # before anything else runs, so aiokafka sends no further fetch until the next cycle
            # (a response still on its way is kept, and handed out after the next resume)
            consumer.pause(*consumer.assignment())
        if batches:  # records came (if all were cut at a gap, it is read again at the next look)
            self.hot, self.parked_since, self.promised = True, None, 0
            self.adapt_wait(consumer, widen=False)
        elif await behind(consumer):
            # the broker's answer says there are records this consumer has not read, yet it
            # brought none: its read took longer than the fetch's wait. Wait longer, look again.
            self.hot = True
            self.adapt_wait(consumer, widen=True)
        elif self.promised > 0:
            self.promised -= 1
            self.hot = True
        else:
            self.hot = False
            self.quiet_looks += quiet
        if len(known) < len(assigned):  # look again soon: their positions are on their way
            self.hot = True
        return self.gaps.cut(consumer, batches)

    def refill(self) -> float:
        """The looks a ring may start now, before the linger ends (a float, 0 to FETCH_BURST):
        one more per `spacing` seconds since the last count, at most FETCH_BURST (a token bucket;
        each look sooner than a linger after the previous one takes one)."""
        now = time.monotonic()
        if self.spacing > 0:
            self.credit = min(float(FETCH_BURST), self.credit + (now - self.credit_at) / self.spacing)
        else:
            self.credit = float(FETCH_BURST)
        self.credit_at = now
        return self.credit

    async def resume_known(self, consumer) -> tuple[set, set]:
        """Resume the assigned partitions whose position is known and pause the others until it
        is, so that the first record of each is checked for a gap (gaps.py: a partition just
        assigned, or sent to its beginning). Returns (known, assigned) TopicPartition sets."""
        known = await self.gaps.learn(consumer)
        assigned = consumer.assignment()  # after learn(), which may await
        consumer.pause(*(assigned - known))  # paused already, unless aiokafka assigned them itself
        consumer.resume(*known)
        return known, assigned

    def look_ms(self, wait_ms: int) -> int:
        """How long a look lasts (ms) while each fetch waits `wait_ms`: a few of the configured
        waits, and at least one whole current wait plus 5 ms."""
        return max(4 * self.fetch_wait_ms + 5, wait_ms + 5)

    def adapt_wait(self, consumer, widen: bool) -> None:
        """Widen the consumer's fetch wait (×2, at most MAX_FETCH_WAIT_MS) after an answer that
        brought nothing while records wait, or narrow it (×3/4, down to the configured
        SAGA_KAFKA_FETCH_MAX_WAIT_MS) after one that brought records; a look lasts at least one
        fetch wait. So the wait follows the broker's read time, about twice it at most.

        Why (measured, `make bench-tansu`): the embedded broker (Tansu 0.6.0, memory storage)
        reads a fetch by going through the partition's batches, about 0.6 ms per thousand, and
        answers a fetch whose wait ran out first with no records and the high watermark. Past
        about ten thousand batches in a partition a 5 ms wait brought nothing at all, and every
        consumer fell further behind. A wait only bounds how long the broker holds a fetch with
        nothing to return, but it cannot stay long: a fetch under way when a look ends is held
        that long, and the next look's fetch waits for it. aiokafka 0.14.0 (pinned) reads its
        fetcher's `_fetch_max_wait_ms` for every request; without it, nothing changes."""
        fetcher = getattr(consumer, "_fetcher", None)
        wait = getattr(fetcher, "_fetch_max_wait_ms", None)
        if wait is None:
            return
        new = min(MAX_FETCH_WAIT_MS, 2 * wait) if widen else max(self.fetch_wait_ms, wait * 3 // 4)
        if new == wait:
            return
        fetcher._fetch_max_wait_ms = self.wait_ms = new
        self.timeout_ms = self.look_ms(new)
        if new > self.widest:  # a few lines at most: each a new high
            self.widest = new
            log.warning("%s: the broker answered a fetch with no records while records wait; fetch wait %s → %s ms "
                        "(the embedded broker reads a partition's whole log per fetch, slower as it grows)",
                        self.name, wait, new)

    async def _wait_for(self, stopping: asyncio.Event, *events: asyncio.Event, bell: bool = False, timeout: float,
                        consumer=None, empty_too: bool = False) -> bool:
        """Wait for `stopping`, an event, (with `bell`) a ring or (with `consumer`) the answer of a
        fetch still under way bringing records (`empty_too`: or saying records wait), at most
        `timeout` s; True if it rang or such an answer came."""
        waiters = [asyncio.ensure_future(e.wait()) for e in (stopping, *events)]
        answered = late_answer(consumer, empty_too) if consumer is not None else None
        ringing = asyncio.ensure_future(self.bell.wait(timeout)) if bell else None
        try:
            await asyncio.wait([*waiters, *(f for f in (ringing, answered) if f is not None)], timeout=timeout,
                               return_when=asyncio.FIRST_COMPLETED)
            if answered is not None and answered.done() and not answered.cancelled():
                if answered.exception() is None:  # else aiokafka aborted its waiters: it is stopping
                    self.late_answers += 1
                    return True
            for event in events:
                event.clear()
            if ringing is not None and ringing.done():
                return ringing.result()
            return False
        finally:  # also when this wait is cancelled: nothing it started keeps waiting
            for future in (*waiters, answered, ringing):
                if future is not None and not future.done():
                    future.cancel()


def buffered(consumer) -> bool:
    """Whether the consumer holds fetched records not yet handed out (a fetch answered after its
    look ended): the next look returns them at once, so there is no reason to park.

    aiokafka 0.14.0 (pinned) keeps them in its fetcher's `_records`; a later version without it
    reads as nothing buffered, and the safety look (SAGA_IDLE_POLL_MS) finds them."""
    return bool(getattr(getattr(consumer, "_fetcher", None), "_records", None))


async def unread(consumer) -> int:
    """Records on the consumer's partitions that it has not read, from what the fetcher already
    knows (each partition's last answer's high watermark minus its position; no request). A
    partition with no known position yet (a reset under way) or no answer yet counts 0."""
    count = 0
    for tp, position in (await known_positions(consumer)).items():
        high = consumer.highwater(tp)
        if high is not None:
            count += max(0, high - position)
    return count


async def behind(consumer) -> bool:
    """Whether the last fetch answer of some assigned partition gave a high watermark beyond the
    consumer's position: records wait that it has not read.

    Why: Tansu 0.6.0 answers a fetch whose wait ran out before it read the partition with no
    records and the high watermark (Parking.adapt_wait); a consumer that then parked read them
    only at a later look, seconds late (README, "Efficiency")."""
    return await unread(consumer) > 0


def late_answer(consumer, empty_too: bool = False) -> asyncio.Future | None:
    """A future done when a fetch of `consumer` that is still under way comes back with records,
    or (`empty_too`) comes back empty with a high watermark beyond the consumer's position
    (`behind`); None when this aiokafka cannot say (then only a ring or the safety look wakes a
    park). Parking asks for empty answers too only while parked: under load nearly every answer
    says records wait, and ending the pause between two fetches on that would undo the linger.

    Why: a look waits a few fetch waits (Parking.timeout_ms) and pauses the partitions when it
    ends, but a fetch already sent is still answered. A busy broker's answer that comes after the
    look is buffered, and without this a consumer that rang, looked and parked took it only at its
    next safety look, 2 s later (README, "Efficiency": the one-at-a-time regression). The late
    answer can also bring nothing but the high watermark (Tansu 0.6.0 on a long log: its read took
    longer than the fetch's wait, Parking.adapt_wait); then the park ends too, so the next look
    widens the wait and reads the records (README, "Lost rings and late empty answers").
    aiokafka 0.14.0 (pinned) notifies its fetch waiters exactly when an answer added records,
    and keeps the fetches under way in its fetcher's `_pending_tasks`."""
    fetcher = getattr(consumer, "_fetcher", None)
    create = getattr(fetcher, "_create_fetch_waiter", None)
    if create is None:
        return None
    under_way = set(getattr(fetcher, "_pending_tasks", ())) if empty_too else set()
    waiter = create()
    if not under_way:
        return waiter
    return asyncio.ensure_future(_answered(consumer, waiter, under_way))


async def _answered(consumer, waiter: asyncio.Future, under_way: set) -> None:
    """Return when `waiter` is done (records came) or a task of `under_way` (aiokafka's fetches
    under way) ended with the consumer `behind`; with none of them left, wait for `waiter`."""
    try:
        while under_way:
            done, _ = await asyncio.wait({waiter, *under_way}, return_when=asyncio.FIRST_COMPLETED)
            if waiter in done or await behind(consumer):
                return
            under_way -= done
        await waiter
    finally:
        waiter.cancel()


def parking(name: str, wants: Iterable[str] | None = None, critical_path: bool = True) -> Parking:
    """The fetch cycle for a consumer called `name` of this instance, as the settings say, woken by
    rings for the event types it `wants` (None: every ring). Off the `critical_path` (a service no
    saga step waits on: kernel/service.py) its linger is SAGA_OFF_PATH_FETCH_LINGER_MS and an early
    look comes back once per OFF_PATH_EARLY_LOOK_SECONDS: under load it looks about 6 times a second
    (the hops: up to 30), while a lone order's rings still end its pause (README, "Off the critical
    path")."""
    from django.conf import settings

    linger_ms = settings.SAGA_FETCH_LINGER_MS if critical_path else settings.SAGA_OFF_PATH_FETCH_LINGER_MS
    return Parking(directory(settings.SAGA_DATA_DIR), name, settings.SAGA_DOORBELLS, linger_ms,
                   settings.SAGA_IDLE_POLL_MS, settings.SAGA_KAFKA_FETCH_MAX_WAIT_MS, wants,
                   early_look_seconds=EARLY_LOOK_SECONDS if critical_path else OFF_PATH_EARLY_LOOK_SECONDS)


def ringer() -> Ringer:
    """What a publisher of this instance rings its consumers' bells with."""
    from django.conf import settings

    return Ringer(directory(settings.SAGA_DATA_DIR))
