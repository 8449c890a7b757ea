"""The one scheduler: forwards scored in the order their batches were taken, a failed
forward's jobs counted and reported, everything scored on drain, due batches started."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field

import numpy as np

from monitor.core.alerts import AlertEvent
from monitor.core.codec import DecodedColumns, SingleFields
from monitor.core.types import Float32Array
from monitor.engine.scheduler import Scheduler


@dataclass
class Job:
    name: str
    received_at: float


@dataclass
class Stages:
    """The stages with the pipeline's batch semantics, recording what was scored."""

    queued: list[Job] = field(default_factory=list)
    max_batch: int = 2
    wait_s: float = 1.0
    scored: list[tuple[list[str], float]] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    failed_at: list[float] = field(default_factory=list)
    degraded: bool = False

    @property
    def pending(self) -> int:
        return len(self.queued)

    def decode(
        self,
        patient_keys: Sequence[str | None],
        payloads: Sequence[bytes],
        nows: Sequence[float],
        validated: Sequence[SingleFields | None] | None = None,
        longest: int = 0,
    ) -> DecodedColumns:
        return DecodedColumns([], [], [], [], np.zeros((0, 1)), {})

    def ingest(self, decoded: DecodedColumns, nows: Sequence[float]) -> list[AlertEvent]:
        return []

    def due(self, now: float) -> bool:
        return len(self.queued) >= self.max_batch or (
            bool(self.queued) and now >= self.queued[0].received_at + self.wait_s
        )

    def deadline(self) -> float | None:
        return self.queued[0].received_at + self.wait_s if self.queued else None

    def take_batch(self, max_n: int | None = None) -> list[Job]:
        n = self.max_batch if max_n is None else max_n
        taken, self.queued = self.queued[:n], self.queued[n:]
        return taken

    def stack(self, jobs: Sequence[Job]) -> Float32Array:
        return np.zeros((len(jobs), 1, 1), np.float32)

    def score(
        self,
        jobs: Sequence[Job],
        predictions: Float32Array,
        now: float,
        *,
        live: bool = True,
        windows: Float32Array | None = None,
    ) -> list[AlertEvent]:
        self.scored.append(([j.name for j in jobs], now))
        return []

    def inference_failed(self, jobs: Sequence[Job], now: float) -> list[AlertEvent]:
        self.failed += [j.name for j in jobs]
        self.failed_at.append(now)
        return [AlertEvent.technical(None, "inference_failed", "raised", t=now, model_version="t")]

    def housekeeping(self, now: float) -> list[AlertEvent]:
        return []

    def housekeeping_would_act(self, now: float) -> bool:
        return False


class Worker:
    """Forwards that end only when the test says so."""

    def __init__(self) -> None:
        self.futures: list[Future[Float32Array]] = []

    def submit(self, windows: Float32Array) -> Future[Float32Array]:
        future: Future[Float32Array] = Future()
        self.futures.append(future)
        return future


class Report:
    def __init__(self) -> None:
        self.failed: list[tuple[int, str]] = []
        self.scored: list[int] = []

    def forward_failed(self, jobs: Sequence[Job], error: BaseException) -> None:
        self.failed.append((len(jobs), str(error)))

    def forward_scored(
        self, jobs: Sequence[Job], predictions: Float32Array, seconds: float
    ) -> None:
        self.scored.append(len(jobs))


def scheduler(stages: Stages, worker: Worker, report: Report, live: bool) -> Scheduler[Job]:
    return Scheduler(stages, worker, report, clock=lambda: 99.0, timer=lambda: 0.0, live=live)


def jobs(*names: str, at: float = 0.0) -> list[Job]:
    return [Job(name, at + i) for i, name in enumerate(names)]


def test_forwards_are_scored_in_batch_order_whatever_order_they_end_in() -> None:
    """The second forward ends first: nothing is scored until the first ends, then both,
    in the order their batches were taken."""
    stages, worker, report = Stages(jobs("a", "b", "c", "d")), Worker(), Report()
    engine = scheduler(stages, worker, report, live=True)
    assert engine.start_due(0.0, limit=2) is None
    assert engine.in_flight == 2
    worker.futures[1].set_result(np.zeros((2, 1), np.float32))
    assert engine.score_done() == []
    assert stages.scored == []
    worker.futures[0].set_result(np.zeros((2, 1), np.float32))
    engine.score_done()
    assert stages.scored == [(["a", "b"], 99.0), (["c", "d"], 99.0)]  # live: the clock's time
    assert report.scored == [2, 2]
    assert engine.in_flight == 0


def test_a_failed_forward_counts_its_jobs_failed_and_the_next_one_is_scored() -> None:
    """A forward that raised: its jobs go to `inference_failed`, the report is told, and
    the batch after it is scored as usual."""
    stages, worker, report = Stages(jobs("a", "b", "c", "d")), Worker(), Report()
    engine = scheduler(stages, worker, report, live=False)
    engine.submit()
    engine.submit()
    worker.futures[0].set_exception(RuntimeError("boom"))
    worker.futures[1].set_result(np.zeros((2, 1), np.float32))
    events = engine.score_done()
    assert stages.failed == ["a", "b"]
    # Its alert changes are returned with the others, at the batch's verdict time.
    assert [(e.reason, e.t) for e in events] == [("inference_failed", 1.0)]
    assert stages.failed_at == [1.0]
    assert report.failed == [(2, "boom")]
    # On a virtual clock, a forward's verdicts are at its jobs' latest receive time.
    assert stages.scored == [(["c", "d"], 3.0)]


def test_start_due_waits_for_a_batch_and_names_its_deadline() -> None:
    """One job, not yet due: no forward, the deadline is returned (the shell arms a timer);
    at the deadline the forward starts."""
    stages, worker, report = Stages(jobs("a", at=10.0)), Worker(), Report()
    engine = scheduler(stages, worker, report, live=True)
    assert engine.start_due(10.5, limit=2) == 11.0
    assert engine.in_flight == 0
    assert engine.start_due(11.0, limit=2) is None
    assert engine.in_flight == 1


class DoneWorker(Worker):
    def submit(self, windows: Float32Array) -> Future[Float32Array]:
        future = super().submit(windows)
        future.set_result(np.zeros((len(windows), 1), np.float32))
        return future


def test_drain_scores_every_queued_job_in_batches_in_order() -> None:
    """On stop, what is in flight and every queued job is scored, batch by batch."""
    stages, worker, report = Stages(jobs("a", "b", "c", "d", "e")), DoneWorker(), Report()
    engine = scheduler(stages, worker, report, live=False)
    engine.submit(at=7.0)
    engine.drain(at=8.0)
    assert stages.scored == [(["a", "b"], 7.0), (["c", "d"], 8.0), (["e"], 8.0)]
    assert stages.pending == 0
    assert engine.in_flight == 0


def test_oldest_started_is_the_start_of_the_oldest_forward_in_flight() -> None:
    """The stall check's reading: None while nothing is in flight, else when (on the timer)
    the oldest forward still unscored was started, also while a younger one has ended."""
    stages, worker, report = Stages(jobs("a", "b", "c", "d")), Worker(), Report()
    ticks = iter([5.0, 6.0, 7.0, 8.0])
    engine = Scheduler(
        stages, worker, report, clock=lambda: 99.0, timer=lambda: next(ticks), live=True
    )
    assert engine.oldest_started() is None
    engine.submit()
    engine.submit()
    assert engine.oldest_started() == 5.0
    worker.futures[1].set_result(np.zeros((2, 1), np.float32))
    engine.score_done()
    assert engine.oldest_started() == 5.0  # the first still runs: nothing scored
    worker.futures[0].set_result(np.zeros((2, 1), np.float32))
    engine.score_done()
    assert engine.oldest_started() is None
