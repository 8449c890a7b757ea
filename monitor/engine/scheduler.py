"""The one scheduler: a batch of payloads -> batcher -> inference worker -> scoring in batch
order -> events; drain on stop.

Every driver uses it: the live daemon (an asyncio shell, the wall clock), offline replay and
the shard's stream recovery (plain loops on the records' receive times). It holds the
forwards started on the inference worker, in the order their batches were taken, and
scores them in that order, so the batch boundaries never reorder verdicts. A forward that
raised ends its jobs as `failed` (the stages count them and raise `inference_failed`, which
a batch scored long enough after the last failure clears); the next batch may pass.
Blocking waits are the driver's choice: a synchronous driver calls `wait_until`, the asyncio
shell awaits `oldest()` and then calls `score_done`.
"""

from __future__ import annotations

from collections import deque
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Generic

from monitor.core.alerts import AlertEvent
from monitor.core.types import Float32Array
from monitor.engine.ports import Clock, IngressBatch, JobT, Report, Stages, Worker

__all__ = ["Scheduler"]


@dataclass(slots=True)
class _Forward(Generic[JobT]):
    """A batch whose forward was started: its jobs, windows, predictions to come, the time
    its verdicts are given at (None: the clock's, when scored) and when it started."""

    jobs: list[JobT]
    windows: Float32Array
    future: Future[Float32Array]
    at: float | None
    started: float


class Scheduler(Generic[JobT]):
    """Drive the stages from ingested batches to scored events.

    Args:
        stages: The synchronous pipeline (`Stages`).
        worker: Runs forwards off the driver's thread.
        report: Told how each forward ended.
        clock: The verdict time of a forward started without one (the wall clock live).
        timer: A monotonic clock for the forwards' latency.
        live: Scoring observes end-to-end latency (meaningless on a virtual clock).
        batch: Jobs per forward (None: the stages' own batch size).
    """

    def __init__(
        self,
        stages: Stages[JobT],
        worker: Worker,
        report: Report[JobT],
        *,
        clock: Clock,
        timer: Clock,
        live: bool,
        batch: int | None = None,
    ) -> None:
        self.stages = stages
        self._worker = worker
        self._report = report
        self._clock = clock
        self._timer = timer
        self._live = live
        self._batch = batch
        self._forwards: deque[_Forward[JobT]] = deque()

    @property
    def in_flight(self) -> int:
        """Forwards started and not yet scored."""
        return len(self._forwards)

    def ingest(self, batch: IngressBatch) -> list[AlertEvent]:
        """Decode and ingest a batch: its refusals counted, ready windows queued.

        Returns:
            Technical alert changes, in payload order.
        """
        stages = self.stages
        nows = batch.received_at
        decoded = stages.decode(batch.keys, batch.payloads, nows, batch.validated, batch.longest)
        return stages.ingest(decoded, nows)

    def submit(self, at: float | None = None) -> bool:
        """Take a batch and start its forward; False when no job is queued.

        Args:
            at: The time its verdicts are given at; None: the clock's when it is scored
                (live), or on a virtual clock the latest receive time of its jobs.
        """
        jobs = self.stages.take_batch(self._batch)
        if not jobs:
            return False
        if at is None and not self._live:
            at = max(job.received_at for job in jobs)
        windows = self.stages.stack(jobs)
        future = self._worker.submit(windows)
        self._forwards.append(_Forward(jobs, windows, future, at, self._timer()))
        return True

    def start_due(self, now: float, limit: int) -> float | None:
        """Start the forwards of due batches while fewer than `limit` are in flight.

        Returns:
            When the oldest queued job becomes due if it is not yet (arm a timer), else None.
        """
        stages = self.stages
        while len(self._forwards) < limit and stages.pending:
            if not stages.due(now):
                return stages.deadline()
            self.submit()
        return None

    def oldest_started(self) -> float | None:
        """When (on the timer) the oldest forward in flight was started, or None: how long
        the inference worker has been on it (the live shell's stall check)."""
        return self._forwards[0].started if self._forwards else None

    def oldest(self) -> Future[Float32Array] | None:
        """The future of the oldest forward in flight (the next to be scored), or None."""
        return self._forwards[0].future if self._forwards else None

    def score_done(self) -> list[AlertEvent]:
        """Score the forwards that ended, oldest first, up to the first still running."""
        events: list[AlertEvent] = []
        forwards = self._forwards
        while forwards and forwards[0].future.done():
            events += self._score(forwards.popleft())
        return events

    def wait_until(self, keep: int) -> list[AlertEvent]:
        """Wait for the oldest forwards and score them until at most `keep` are in flight."""
        events: list[AlertEvent] = []
        forwards = self._forwards
        while len(forwards) > keep:
            events += self._score(forwards.popleft())
        return events

    def flush(self, at: float | None = None) -> list[AlertEvent]:
        """Start one batch's forward, then score the one before it (a synchronous driver
        decodes the next records while the new forward runs)."""
        self.submit(at)
        return self.wait_until(1)

    def drain(self, at: float | None = None) -> list[AlertEvent]:
        """Score everything: the forwards in flight and every queued job, in batch order."""
        events: list[AlertEvent] = []
        while self.stages.pending:
            events += self.flush(at)
        return events + self.wait_until(0)

    def cancel(self) -> None:
        """Forget the forwards in flight without scoring them (a failed run)."""
        for forward in self._forwards:
            forward.future.cancel()
        self._forwards.clear()

    def _score(self, forward: _Forward[JobT]) -> list[AlertEvent]:
        try:
            predictions = forward.future.result()
        except Exception as exc:  # reported, counted, alerted; the next batch may succeed
            self._report.forward_failed(forward.jobs, exc)
            return self.stages.inference_failed(forward.jobs, self._verdict_time(forward))
        self._report.forward_scored(forward.jobs, predictions, self._timer() - forward.started)
        return self.stages.score(
            forward.jobs,
            predictions,
            self._verdict_time(forward),
            live=self._live,
            windows=forward.windows,
        )

    def _verdict_time(self, forward: _Forward[JobT]) -> float:
        """When a forward's verdicts are given: its set time, else the clock's now."""
        return self._clock() if forward.at is None else forward.at
