"""The micro-batcher: collect scoring jobs, flush on size or on the age of the oldest one.

Pure and clock-free: every call takes `now`. Items leave in arrival order, so several jobs of
one patient are scored in sequence order within one batch. Only when more than
`max_pending` items wait does `add` shed: first the oldest item of a patient that has a
newer one pending (the newest window per patient wins), else the oldest item overall.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Sequence
from typing import Generic, TypeVar

__all__ = [
    "MicroBatcher",
]

T = TypeVar("T")


class _Entry(Generic[T]):
    __slots__ = ("alive", "at", "index", "item", "key")

    def __init__(self, key: str, item: T, at: float, index: int) -> None:
        self.key = key
        self.item = item
        self.at = at
        self.index = index
        self.alive = True


class MicroBatcher(Generic[T]):
    """A bounded FIFO of jobs keyed by patient, flushed in batches.

    Args:
        max_batch: A batch is due as soon as this many items wait.
        max_wait_s: A batch is due once its oldest item has waited this long.
        max_pending: Most items held; beyond it `add` sheds (see module docstring).
    """

    def __init__(self, max_batch: int, max_wait_s: float, max_pending: int) -> None:
        if max_batch < 1 or max_pending < 1 or max_wait_s < 0:
            raise ValueError("max_batch and max_pending must be >= 1, max_wait_s >= 0")
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self.max_pending = max_pending
        # Removal is lazy (entries are marked dead) so shedding from the middle is O(log n).
        self._queue: deque[_Entry[T]] = deque()
        self._latest: dict[str, _Entry[T]] = {}
        self._superseded: list[tuple[int, _Entry[T]]] = []  # heap by arrival index
        # `add` of a batch that sheds nothing does not fill the heap: it is rebuilt from
        # the queue before a shed.
        self._superseded_unknown = False
        self._alive = 0
        self._next_index = 0
        # Dead entries left in the middle by shedding would otherwise grow without bound
        # while nothing is taken; rebuild once they outnumber the live ones.
        self._compact_above = 2 * max_pending + 64

    def __len__(self) -> int:
        return self._alive

    def add(self, keys: Sequence[str], items: Sequence[T], at: Sequence[float]) -> list[T]:
        """Queue items in order (a single item is a batch of one).

        Args:
            keys: The patient of each item.
            items: The jobs.
            at: Each item's arrival time, seconds.

        Returns:
            Items shed to respect `max_pending` (empty in normal operation), oldest first,
            in the order the items' arrivals shed them.
        """
        if self._alive + len(items) > self.max_pending:
            shed: list[T] = []
            for key, item, now in zip(keys, items, at, strict=True):
                shed += self._add_one(key, item, now)
            return shed
        # No item can be shed: queue them all at once. Which of the queued items are
        # superseded is worked out only if shedding is ever needed (`_shed_one`).
        n, index = len(items), self._next_index
        entries = list(map(_Entry, keys, items, at, range(index, index + n)))
        self._queue.extend(entries)
        self._latest.update(zip(keys, entries, strict=True))  # the last one per key wins
        self._superseded_unknown = True
        self._next_index = index + n
        self._alive += n
        if len(self._queue) > self._compact_above:
            self._compact()
        return []

    def _add_one(self, key: str, item: T, now: float) -> list[T]:
        """Queue one item when the queue may be full; return the items shed for it."""
        entry = _Entry(key, item, now, self._next_index)
        self._next_index += 1
        latest = self._latest
        previous = latest.get(key)
        if previous is not None:
            heapq.heappush(self._superseded, (previous.index, previous))
        latest[key] = entry
        self._queue.append(entry)
        shed: list[T] = []
        # Counted once room is made: `len` (read by a metrics scrape from another thread)
        # never shows more than max_pending.
        while self._alive + 1 > self.max_pending:
            shed.append(self._shed_one())
        self._alive += 1
        if len(self._queue) > self._compact_above or len(self._superseded) > self._compact_above:
            self._compact()
        return shed

    def due(self, now: float) -> bool:
        """Tell whether a batch should be flushed now (size reached or oldest too old)."""
        if self._alive >= self.max_batch:
            return True
        oldest = self._oldest()
        # Same expression as deadline(): due(deadline()) must be True despite rounding.
        return oldest is not None and now >= oldest.at + self.max_wait_s

    def deadline(self) -> float | None:
        """Return when the oldest pending item becomes due, or None when empty."""
        oldest = self._oldest()
        return None if oldest is None else oldest.at + self.max_wait_s

    def take(self, max_n: int) -> list[T]:
        """Remove and return up to `max_n` items in arrival order."""
        queue = self._queue
        if len(queue) == self._alive:  # no dead entry queued: the first max_n are the items
            taken = [queue.popleft() for _ in range(min(max_n, len(queue)))]
            for entry in taken:
                self._drop(entry)
            return [entry.item for entry in taken]
        out: list[T] = []
        while queue and len(out) < max_n:
            entry = queue.popleft()
            if entry.alive:
                out.append(entry.item)
                self._drop(entry)
        return out

    def _oldest(self) -> _Entry[T] | None:
        queue = self._queue
        while queue and not queue[0].alive:
            queue.popleft()
        return queue[0] if queue else None

    def _shed_one(self) -> T:
        if self._superseded_unknown:
            latest = self._latest
            self._superseded = [
                (e.index, e) for e in self._queue if e.alive and latest.get(e.key) is not e
            ]
            heapq.heapify(self._superseded)
            self._superseded_unknown = False
        heap = self._superseded
        while heap:
            _, entry = heapq.heappop(heap)
            if entry.alive:
                self._drop(entry)
                return entry.item
        oldest = self._oldest()
        if oldest is None:  # unreachable: called only while _alive > max_pending >= 1
            raise RuntimeError("nothing to shed")
        self._queue.popleft()
        self._drop(oldest)
        return oldest.item

    def _drop(self, entry: _Entry[T]) -> None:
        entry.alive = False
        self._alive -= 1
        if self._latest.get(entry.key) is entry:
            del self._latest[entry.key]

    def _compact(self) -> None:
        limit = self._compact_above
        if len(self._queue) > limit:
            self._queue = deque(e for e in self._queue if e.alive)
        if len(self._superseded) > limit:
            self._superseded = [pair for pair in self._superseded if pair[1].alive]
            heapq.heapify(self._superseded)
