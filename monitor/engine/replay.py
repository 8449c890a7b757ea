"""The plain loop that drives the engine on a virtual clock (offline replay).

Each batch is decoded at once; runs of accepted single samples are ingested at once. A run
ends before a housekeeping pass that might act and where the batcher fills, so passes,
flushes, alerts (in order) and every metric are those of ingesting record by record, each
a batch of one (`tests/replay/test_offline_batched.py`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from monitor.core.alerts import AlertEvent
from monitor.engine.ports import IngressBatch
from monitor.engine.scheduler import Scheduler
from monitor.engine.ticks import Ticks

__all__ = ["VirtualLoop"]


class VirtualLoop:
    """Feed batches through a scheduler, the clock being each payload's receive time.

    Args:
        scheduler: The engine.
        ticks: Its housekeeping schedule.
        max_batch: A forward is started as soon as this many jobs are queued.
        emit: Takes the events, in order.
    """

    def __init__(
        self,
        scheduler: Scheduler[Any],
        ticks: Ticks,
        max_batch: int,
        emit: Callable[[list[AlertEvent]], None],
    ) -> None:
        self._scheduler = scheduler
        self._ticks = ticks
        self._max_batch = max_batch
        self._emit = emit
        self._latest = -math.inf  # the latest receive time ingested

    def feed(self, batches: Iterable[IngressBatch]) -> int:
        """Process every batch in order; return how many payloads were read."""
        n = 0
        stages = self._scheduler.stages
        for batch in batches:
            nows = batch.received_at
            columns = stages.decode(
                batch.keys, batch.payloads, nows, batch.validated, batch.longest
            )
            index, rest = columns.index, columns.rest
            j = 0  # next column
            position = 0
            while position < len(nows):
                self._tick(nows[position])
                run = 1 if position in rest else self._run_length(index, j, nows)
                end = position + run
                if run == len(nows):
                    events = stages.ingest(columns, nows)
                else:
                    events = stages.ingest(columns.slice(position, end), nows[position:end])
                if events:
                    self._emit(events)
                self._latest = max(self._latest, nows[end - 1])
                if position not in rest:
                    self._tick(nows[end - 1])  # passes the run spanned: no-ops
                    j += run
                if stages.pending >= self._max_batch:
                    self._emit(self._scheduler.flush(nows[end - 1]))
                position = end
            n += len(nows)
        return n

    def _tick(self, now: float) -> None:
        events = self._ticks.advance(now)
        if events:
            self._emit(events)

    def _run_length(self, index: list[int], j: int, nows: list[float] | Any) -> int:
        """How many columns from `j` on form one run (at least one).

        A run is consecutive positions received in time order (from the latest receive
        time so far on: an earlier one could make a patient staler), no longer than the
        room left in the batch (each sample queues at most one job), and spans no
        housekeeping pass that might act (`Ticks.spans_acting_pass`). The passes it spans
        are left to the tick after the run, which skips them: their result is empty, and
        monitoring is not degraded (checked) and the run sheds nothing, so the degraded
        gauge they would set is the same too.
        """
        start = index[j]
        room = self._max_batch - self._scheduler.stages.pending
        limit = min(len(index) - j, max(room, 1))
        first = nows[start]
        if first < self._latest:
            return 1
        spans = self._ticks.spans_acting_pass
        # Grow the run by doubling (a short run costs little), then bisect to the longest
        # that spans no acting pass: spanning one only grows with the run's end.
        run, step = 1, 1
        while run < limit:
            grown, end = run, min(run + step, limit)
            while (
                grown < end
                and index[j + grown] == start + grown
                and nows[start + grown] >= nows[start + grown - 1]
            ):
                grown += 1
            if grown == run:
                break
            if spans(first, nows[start + grown - 1]):
                short, long = run, grown
                while long - short > 1:
                    middle = (short + long) // 2
                    if spans(first, nows[start + middle - 1]):
                        long = middle
                    else:
                        short = middle
                return short
            run = grown
            if grown < end:
                break
            step *= 2
        return run
