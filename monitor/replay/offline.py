"""Offline replay: the daemon's own engine on a virtual clock, without a broker.

The same pipeline and scheduler as `monitor run` (`monitor.engine`); the clock is each
record's receive time, so a recording gives the alerts the live daemon gave, as fast as the
CPU allows. A recording implements the engine's ingress (`RecordBlock.batch`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent
from monitor.core.codec import CodecLimits
from monitor.core.types import Float32Array
from monitor.engine.pipeline import Job, Pipeline, model_info_from_card
from monitor.engine.replay import VirtualLoop
from monitor.engine.scheduler import Scheduler
from monitor.engine.ticks import Ticks
from monitor.engine.worker import ThreadWorker
from monitor.model.predictor import Predictor
from monitor.model.store import load_model
from monitor.replay.outcomes import outcome_counts
from monitor.replay.recording import Record, RecordBlock, line_limit, read_blocks
from monitor.service.app import one_inference_thread
from monitor.service.logs import PipelineLines
from monitor.service.metrics import Metrics
from monitor.settings import Settings
from monitor.tuning import replay_tuning

#: Offline batches can be larger than live ones: nobody waits for a verdict.
OFFLINE_MAX_BATCH = 1024

#: Records decoded at once (`Pipeline.decode`) before they enter the pipeline.
DECODE_CHUNK = 512


def _chunks(records: Iterable[Record], size: int) -> Iterator[list[Record]]:
    """Yield consecutive lists of `size` records (the last one shorter)."""
    iterator = iter(records)
    while chunk := list(islice(iterator, size)):
        yield chunk


@dataclass
class PatientTrace:
    """Scored samples of one patient: times, actual values and their predictions."""

    t: list[float] = field(default_factory=list)
    actual: list[np.ndarray[Any, Any]] = field(default_factory=list)
    predicted: list[np.ndarray[Any, Any]] = field(default_factory=list)


@dataclass
class OfflineResult:
    """What an offline replay produced.

    Attributes:
        alerts: Every alert event, in the order the daemon would have published them.
        predictions: Patient -> (t (n,), actual (n, F), predicted (n, F)) of scored samples
            (empty unless collected).
        features: Feature names, in column order.
        samples_scored: Samples scored.
        records: Records read.
        elapsed_s: Wall time of the replay.
        metrics: The pipeline's metrics (outcome counts and so on).
        outcomes: Samples received by outcome, `invalid` split by reason
            (`monitor.replay.outcomes.outcome_counts`); they add up to every sample received.
        gains: Feature -> the alarm gain its z was divided by (docs/detection.md).
        rhythm: Beat waveform -> how its ectopic beats are told (`Pipeline.rhythm`).
        limits: The codec bounds the pipeline applied (its model's signals, partial vital
            sets for a model with an observed mask): what a baseline must apply too.
    """

    alerts: list[AlertEvent]
    predictions: dict[str, tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]]
    features: list[str]
    samples_scored: int
    records: int
    elapsed_s: float
    metrics: Metrics
    outcomes: dict[str, int] = field(default_factory=dict)
    gains: dict[str, float] = field(default_factory=dict)
    rhythm: dict[str, str] = field(default_factory=dict)
    limits: CodecLimits = field(default_factory=CodecLimits)


class OfflineRunner:
    """Drive the engine with records on a virtual clock (a plain loop, `VirtualLoop`).

    Args:
        predictor: The model.
        settings: Daemon settings (detector, windows, batching); `batch.max_batch` is
            raised to at least `OFFLINE_MAX_BATCH` and no wait applies (virtual time).
        collect_predictions: Keep (t, actual, predicted) per patient for evaluation.
    """

    def __init__(
        self, predictor: Predictor, settings: Settings, *, collect_predictions: bool = False
    ) -> None:
        batch = settings.batch.model_copy(
            update={
                "max_batch": max(settings.batch.max_batch, OFFLINE_MAX_BATCH),
                "max_pending": max(settings.batch.max_pending, 4 * OFFLINE_MAX_BATCH),
            }
        )
        self.settings = settings.model_copy(update={"batch": batch})
        self.predictor = predictor
        self.metrics = Metrics.create(CollectorRegistry())
        self.pipeline = Pipeline(
            model_info_from_card(predictor.card), self.settings, self.metrics, log=PipelineLines()
        )
        self.collect = collect_predictions
        self.traces: dict[str, PatientTrace] = {}
        self.alerts: list[AlertEvent] = []
        self.scored = 0
        self._executor = ThreadPoolExecutor(1, "inference", initializer=one_inference_thread)
        #: The engine (the clock: each forward's verdicts at the time its flush was due).
        worker = ThreadWorker(self._executor, self._predict)
        self.scheduler: Scheduler[Job] = Scheduler(
            self.pipeline, worker, self, clock=lambda: 0.0, timer=time.perf_counter, live=False
        )
        # No pass acts for a patient seen within this long (staleness or idle limit).
        quiet_s = min(self.pipeline.stale_s, self.settings.window.idle_ttl_s)
        self.ticks = Ticks(self.pipeline, self.settings.housekeeping_interval_s, quiet_s)
        self._loop = VirtualLoop(self.scheduler, self.ticks, batch.max_batch, self.alerts.extend)

    @property
    def housekeeping_passes(self) -> int:
        """Housekeeping passes run (`Pipeline.housekeeping` calls), for tests and benchmarks."""
        return self.ticks.passes

    def feed(self, records: Iterable[Record]) -> int:
        """Process records in order; return how many were read.

        Records are decoded `DECODE_CHUNK` at a time (`Pipeline.decode`), then go
        through the pipeline in order, with housekeeping and batch flushes exactly where
        record by record ingestion would have them.
        """
        chunks = (RecordBlock.of(chunk).batch() for chunk in _chunks(records, DECODE_CHUNK))
        with replay_tuning():
            return self._loop.feed(chunks)

    def feed_recording(self, path: Path) -> int:
        """`feed` the records of a recording, read a block at a time (`read_blocks`), lines
        no longer than a record with the largest payload the codec takes (`line_limit`).

        Raises:
            DataError: A line other than the last does not parse as a record, is too long,
                has a receive time out of range, or the gzip data is corrupt.
        """
        limit = line_limit(self.settings.ingest.max_payload_bytes)
        with replay_tuning():
            return self._loop.feed(block.batch() for block in read_blocks(path, limit))

    def finish(self, now: float | None = None) -> None:
        """Score everything still queued, then stop the inference thread."""
        self.alerts += self.scheduler.drain(now)
        self._executor.shutdown()

    def close(self) -> None:
        """Stop the inference thread without scoring what is queued (a failed run)."""
        self.scheduler.cancel()
        self._executor.shutdown(cancel_futures=True)

    # -- the engine's report port --------------------------------------------------------

    def _predict(self, windows: Float32Array) -> Float32Array:
        return self.predictor.predict(windows)  # looked up per call: benchmarks wrap it

    def forward_failed(self, jobs: Sequence[Job], error: BaseException) -> None:
        """A forward raised: the run fails (offline, a broken model is not a transient)."""
        raise error

    def forward_scored(
        self, jobs: Sequence[Job], predictions: Float32Array, seconds: float
    ) -> None:
        """Count the scored samples; keep their traces when collecting (`Report`)."""
        self.scored += len(jobs)
        if self.collect:
            for job, pred in zip(jobs, predictions, strict=True):
                trace = self.traces.get(job.patient_id)
                if trace is None:
                    trace = self.traces[job.patient_id] = PatientTrace()
                trace.t.append(job.t)
                trace.actual.append(job.actual)
                trace.predicted.append(pred)


def run_offline(
    recording: Path,
    model: Path,
    *,
    settings: Settings | None = None,
    device: str = "cpu",
    collect_predictions: bool = False,
) -> OfflineResult:
    """Replay a recording through the daemon's pipeline on a virtual clock.

    Args:
        recording: A recording (JSON Lines, optionally gzip).
        model: Model directory.
        settings: Daemon settings (detector thresholds, windows); defaults when None.
        device: Inference device.
        collect_predictions: Return per-patient (t, actual, predicted) for evaluation.
    """
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    settings = settings or Settings()
    # Offline, the codec's clock-skew check compares sample times with record receive
    # times, which are as old as the recording: only the relative skew matters.
    predictor = Predictor(load_model(model), device, settings.model.backend)
    runner = OfflineRunner(predictor, settings, collect_predictions=collect_predictions)
    t0 = time.perf_counter()
    try:
        n = runner.feed_recording(recording)
    except BaseException:
        runner.close()
        raise
    runner.finish()
    elapsed = time.perf_counter() - t0
    predictions = {
        pid: (np.asarray(tr.t), np.stack(tr.actual), np.stack(tr.predicted))
        for pid, tr in runner.traces.items()
    }
    return OfflineResult(
        alerts=runner.alerts,
        predictions=predictions,
        features=list(predictor.features),
        samples_scored=runner.scored,
        records=n,
        elapsed_s=elapsed,
        metrics=runner.metrics,
        outcomes=outcome_counts(runner.metrics.messages, runner.metrics.invalid),
        gains=runner.pipeline.gains(),
        rhythm=runner.pipeline.rhythm(),
        limits=runner.pipeline.limits,
    )
