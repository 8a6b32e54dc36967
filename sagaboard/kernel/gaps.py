"""Offset gaps: a fetch that skips an offset of a partition is cut there, and the gap read again.

Why: the embedded broker (Tansu 0.6.0, memory storage) can hand out a record before one that was
given the offset ahead of it is readable, when several producers write to one partition at once.
A fetch at offset N then answers with the records from N+1, aiokafka moves the position past N,
and N is never read by that consumer: measured with four producers and four consumers on one
partition (bare aiokafka), about one such gap per second, each filled within 6 to 70 ms (a read
again from N brought it every time). In Sagaboard it left an order PENDING until its deadline:
the exchange service never read its OrderCreated while the deadline service did (CI, 2026-12-01,
tests/test_recovery.py, PostgreSQL run).

So the consumer remembers, per partition, the offset its next record must have: its position
before each fetch. Records are handed on in offset order up to a gap; at a gap the rest of that
partition's records are dropped, the consumer seeks back to the gap, and the next fetch reads from
there. A partition whose position is not known yet (just assigned, or sent to its beginning or end)
is not fetched until it is, so that its first record is checked too. A position that changed
between fetches (a seek by other code: a broker restart, a lost log, a reassignment) is taken as
the new next offset. A gap still there after GAP_PATIENCE_SECONDS is accepted with a warning: a
real Kafka has gaps that never fill (transaction markers, compacted topics; the saga topic has
neither, so there it costs nothing), and when retention deleted records a consumer had not read
(OffsetOutOfRange), aiokafka moves its position forward to the log's start, which costs that long
here. Records from a position moved during the fetch itself (aiokafka assigning partitions anew
to a consumer without a group, as the dashboard feed is) cannot be checked: they are dropped and
the partition read again from its beginning.
"""
from __future__ import annotations

import asyncio
import logging
import time

log = logging.getLogger(__name__)
GAP_PATIENCE_SECONDS = 2.0  # a gap still there after this long is accepted (never seen: Tansu fills one in < 0.1 s)
POSITION_WAIT_SECONDS = 0.05  # how long learn() waits for a partition's position before a fetch
RESET_WAIT_SECONDS = 1.0  # how long learn() waits for a partition sent to its beginning


class OffsetGaps:
    """The next offset expected on each assigned partition of one consumer called `name`.

    `await learn(consumer)` before a fetch returns the partitions whose position is known (fetch
    only those); `cut(consumer, batches)` after it returns the records up to any gap and seeks
    back to it. `read_again` counts the gaps read again, `accepted` those given up on."""

    def __init__(self, name: str, patience_seconds: float = GAP_PATIENCE_SECONDS):
        self.name = name
        self.patience = patience_seconds
        self.next: dict = {}  # TopicPartition -> the offset its next record must have
        self.since: dict = {}  # TopicPartition -> (gap offset, time.monotonic() it was first seen)
        self.unchecked: set = set()  # partitions whose records came from a position moved during the fetch
        self.read_again = 0
        self.accepted = 0

    async def learn(self, consumer) -> set:
        """Note each assigned partition's position as the offset its next record must have, and
        return the partitions whose position is known. A position that is not where the last
        fetch left it was moved by a seek: it is taken, and a gap being read again forgotten.
        A partition whose last records could not be checked is first sent to its beginning (see
        `_upto_gap`), at most RESET_WAIT_SECONDS; its position is known once that is done."""
        if self.unchecked:
            tps, self.unchecked = self.unchecked & consumer.assignment(), set()
            try:
                if tps:
                    await asyncio.wait_for(consumer.seek_to_beginning(*tps), RESET_WAIT_SECONDS)
            except Exception as exc:  # timed out (the reset goes on) or no longer assigned
                log.info("%s: reading %s again from the start: %r", self.name, sorted(tps), exc)
        positions = await known_positions(consumer)
        for tp in [tp for tp in self.next if tp not in positions]:
            del self.next[tp]
            self.since.pop(tp, None)
        for tp, position in positions.items():
            if self.next.get(tp) != position:
                self.next[tp] = position
                self.since.pop(tp, None)
        return set(positions) & consumer.assignment()  # (the public position() awaits: an assign() may come)

    def cut(self, consumer, batches: dict) -> dict:
        """`batches` ({TopicPartition: [records in offset order]}) with each partition's records
        cut at its first gap; the consumer is sent back to the gap (unless the gap has lasted
        `patience` seconds: then it is accepted and logged). Returns a new dict; partitions left
        with no records are left out."""
        kept = {}
        for tp, records in batches.items():
            upto = self._upto_gap(consumer, tp, records)
            if upto:
                kept[tp] = records if upto == len(records) else records[:upto]
        return kept

    def _upto_gap(self, consumer, tp, records) -> int:
        """How many of `records` come before a gap (all of them if there is none)."""
        if not records:
            return 0
        expected = self.next.get(tp)
        first, last = records[0].offset, records[-1].offset
        if first == expected and last - first == len(records) - 1:  # offsets only rise: no gap
            self.next[tp] = last + 1
            self.since.pop(tp, None)
            return len(records)
        if expected is None or first < expected:
            # the position moved during the fetch (aiokafka assigned the partition anew, or reset it
            # itself): where it started is not known, so neither is whether a record before
            # `first` was skipped. Drop them; learn() sends the partition to its beginning.
            log.warning("%s: %s was read from a position moved during the fetch (records from %s, expected %s); "
                        "reading it again from its beginning", self.name, tp, first, expected)
            self.unchecked.add(tp)
            self.next.pop(tp, None)
            return 0
        for i, record in enumerate(records):
            if record.offset > expected and not self._accept(tp, expected, record.offset):
                self.next[tp] = expected
                consumer.seek(tp, expected)
                return i
            expected = record.offset + 1
        self.next[tp] = expected
        self.since.pop(tp, None)
        return len(records)

    def _accept(self, tp, gap: int, found: int) -> bool:
        """Whether to go on past the gap at offset `gap` (the next record read is at `found`)."""
        now = time.monotonic()
        seen = self.since.get(tp)
        if seen is None or seen[0] != gap:
            self.since[tp] = (gap, now)
            self.read_again += 1
            log.info("%s: %s skipped offset %s (the next record read was %s); reading it again", self.name, tp, gap, found)
            return False
        if now - seen[1] < self.patience:
            return False
        self.accepted += 1
        del self.since[tp]
        log.warning("%s: offsets %s to %s of %s are still not readable after %.1f s; going on without them",
                    self.name, gap, found - 1, tp, now - seen[1])
        return True


async def known_positions(consumer) -> dict:
    """{TopicPartition: position} of the consumer's assigned partitions whose position is known.

    aiokafka 0.14.0 (pinned) keeps each partition's state in its subscription state: read there
    without waiting (this runs before every fetch). Without it, the public `position()` of every
    partition is awaited at once, for at most POSITION_WAIT_SECONDS."""
    assigned = consumer.assignment()
    subscription = getattr(getattr(consumer, "_subscription", None), "subscription", None)
    assignment = getattr(subscription, "assignment", None)
    if assignment is not None and hasattr(assignment, "state_value"):
        known = {}
        for tp in assigned:
            state = assignment.state_value(tp)
            if state is not None and state.has_valid_position:
                known[tp] = state.position
        return known
    if not assigned:
        return {}
    tasks = {tp: asyncio.ensure_future(consumer.position(tp)) for tp in assigned}
    await asyncio.wait(tasks.values(), timeout=POSITION_WAIT_SECONDS)
    known = {}
    for tp, task in tasks.items():
        if task.done() and not task.cancelled() and task.exception() is None:
            known[tp] = task.result()
        else:
            task.cancel()
    return known
