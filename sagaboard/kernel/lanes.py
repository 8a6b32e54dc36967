"""The lane scheduler: one FIFO lane per Kafka key (order id), so the events of an order are applied
strictly in the order they were produced, while a slow order never holds up the others.

A lane hands out its records from the front, in order. A lane is *held* while its front record
waits for something outside a batch: the seed's delays (a handler's `before` coroutine, which may
sleep 15 s) or a retry's back-off; the records behind it wait, other lanes go on. `take(limit)`
collects a batch: from every lane that is not held, its front records up to the first one that
must wait, in the order the lanes first received a record.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

Item = TypeVar("Item")


class Lanes(Generic[Item]):
    """Lanes of items keyed by `key(item)`; `must_wait(item)` says an item cannot join a batch yet
    (it needs its `before` step first)."""

    def __init__(self, key: Callable[[Item], Hashable], must_wait: Callable[[Item], bool]):
        self.key = key
        self.must_wait = must_wait
        self.lanes: OrderedDict[Hashable, deque[Item]] = OrderedDict()
        self.held: set[Hashable] = set()
        self.count = 0

    def __len__(self) -> int:
        """Items in all lanes (held or not)."""
        return self.count

    def add(self, item: Item) -> None:
        lane = self.lanes.get(self.key(item))
        if lane is None:
            lane = self.lanes[self.key(item)] = deque()
        lane.append(item)
        self.count += 1

    def hold(self, key: Hashable) -> None:
        """Nothing of this lane joins a batch until `release(key)`."""
        self.held.add(key)

    def release(self, key: Hashable) -> None:
        self.held.discard(key)

    def waiting(self) -> list[Item]:
        """The front items that must wait (need their `before` step) in lanes not held."""
        return [lane[0] for key, lane in self.lanes.items() if key not in self.held and self.must_wait(lane[0])]

    def take(self, limit: int) -> list[Item]:
        """Up to `limit` items for one batch, each lane's in order; they leave their lanes."""
        batch: list[Item] = []
        emptied = []
        for key, lane in self.lanes.items():
            if key in self.held:
                continue
            while lane and len(batch) < limit and not self.must_wait(lane[0]):
                batch.append(lane.popleft())
            if not lane:
                emptied.append(key)
            if len(batch) >= limit:
                break
        for key in emptied:
            del self.lanes[key]
        self.count -= len(batch)
        return batch

    def put_back(self, items: list[Item]) -> None:
        """Return items taken but not finished to the front of their lanes, in their order."""
        for item in reversed(items):
            key = self.key(item)
            lane = self.lanes.get(key)
            if lane is None:
                lane = self.lanes[key] = deque()
                self.lanes.move_to_end(key, last=False)
            lane.appendleft(item)
            self.count += 1

    def drop_partition(self, belongs: Callable[[Item], bool]) -> int:
        """Forget the items of a partition this process no longer holds; how many."""
        dropped = 0
        for key in list(self.lanes):
            lane = self.lanes[key]
            kept = deque(item for item in lane if not belongs(item))
            dropped += len(lane) - len(kept)
            if kept:
                self.lanes[key] = kept
            else:
                del self.lanes[key]
                self.held.discard(key)
        self.count -= dropped
        return dropped
