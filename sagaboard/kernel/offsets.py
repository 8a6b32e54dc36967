"""Offset tracking: which offset of each partition may be committed to Kafka.

Records of a partition finish out of order (lanes), so the committable offset of a partition is
the lowest offset received and not yet finished, or one past the highest received when all are
finished (Kafka's committed offset is the next record to read). Offsets are committed only after
the database commit of what they finished (DESIGN.md section 5: at-least-once delivery); a record
finished but not yet committed is delivered again after a crash, and the inbox ignores it.
"""
from __future__ import annotations

import heapq


class PartitionOffsets:
    """One partition: offsets received and not finished, the high mark and the committed offset."""

    def __init__(self):
        self.unfinished: set[int] = set()
        self._heap: list[int] = []  # a min-heap over `unfinished`, with stale entries skipped lazily
        self.high = 0  # one past the highest offset received
        self.committed = -1  # the last offset committed to Kafka by this process (-1: none)

    def received(self, offset: int) -> None:
        self.unfinished.add(offset)
        heapq.heappush(self._heap, offset)
        self.high = max(self.high, offset + 1)

    def finished(self, offset: int) -> None:
        self.unfinished.discard(offset)

    def committable(self) -> int:
        while self._heap and self._heap[0] not in self.unfinished:
            heapq.heappop(self._heap)
        return self._heap[0] if self._heap else self.high

    def restart(self, at: int = 0) -> None:
        """Forget everything: the partition is read again from `at` (a broker that lost its log,
        or a partition handed back to its committed offset)."""
        self.unfinished.clear()
        self._heap.clear()
        self.high = at


class OffsetTracker:
    """Every partition this process consumes, keyed by aiokafka's TopicPartition."""

    def __init__(self):
        self.partitions: dict = {}

    def of(self, tp) -> PartitionOffsets:
        offsets = self.partitions.get(tp)
        if offsets is None:
            offsets = self.partitions[tp] = PartitionOffsets()
        return offsets

    def received(self, tp, offset: int) -> bool:
        """Note a record; False when the offsets went back: the broker lost the partition and
        started it anew (the embedded one keeps nothing across a restart), so what this process
        committed there means nothing any more."""
        offsets = self.of(tp)
        rewound = offset < offsets.high
        if rewound:
            offsets.committed = -1
            offsets.high = offset
        offsets.received(offset)
        return not rewound

    def read_again(self, tp) -> None:
        """The partition's log is new (the broker lost it): what this process committed there
        means nothing, and it is read again from its beginning (the caller seeks there)."""
        offsets = self.of(tp)
        offsets.committed = -1
        offsets.restart(0)

    def finished(self, tp, offset: int) -> None:
        offsets = self.partitions.get(tp)
        if offsets is not None:  # None: the partition went to a peer meanwhile
            offsets.finished(offset)

    def to_commit(self, assigned) -> dict:
        """{tp: offset} for every assigned partition whose committable offset moved on."""
        commit = {}
        for tp, offsets in self.partitions.items():
            target = offsets.committable()
            if target > offsets.committed and tp in assigned:
                commit[tp] = target
        return commit

    def committed(self, offsets: dict) -> None:
        for tp, target in offsets.items():
            if tp in self.partitions:
                self.partitions[tp].committed = target

    def keep_only(self, partitions) -> None:
        """Forget partitions not in `partitions`; those kept restart from their committed offset
        (an assign() sends aiokafka back there)."""
        for tp in list(self.partitions):
            if tp in partitions:
                offsets = self.partitions[tp]
                offsets.restart(max(offsets.committed, 0))
            else:
                del self.partitions[tp]

    def unfinished(self) -> int:
        return sum(len(o.unfinished) for o in self.partitions.values())
