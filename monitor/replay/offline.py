"""Offline replay: the daemon's own pipeline on a virtual clock, without a broker.

The same codec, windows, batcher, model and detector as `monitor run`; the clock is each
record's receive time, so a recording gives the alerts the live daemon gave, as fast as the
CPU allows.
"""

from __future__ import annotations

import math
import os
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import islice
from pathlib import Path
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent
from monitor.core.codec import CodecLimits, DecodedColumns
from monitor.core.types import Float32Array
from monitor.model.predictor import Predictor
from monitor.model.store import load_model
from monitor.replay.outcomes import outcome_counts
from monitor.replay.recording import Record, RecordBlock, line_limit, read_blocks
from monitor.service.app import one_inference_thread
from monitor.service.metrics import Metrics
from monitor.service.pipeline import Job, Pipeline, model_info_from_card
from monitor.settings import Settings
from monitor.transports.mqtt.topics import patient_of
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
    limits: CodecLimits = field(default_factory=CodecLimits)


class OfflineRunner:
    """Drive a `Pipeline` with records on a virtual clock.

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
        self.pipeline = Pipeline(model_info_from_card(predictor.card), self.settings, self.metrics)
        self.collect = collect_predictions
        self.traces: dict[str, PatientTrace] = {}
        self.alerts: list[AlertEvent] = []
        self.scored = 0
        # Housekeeping passes, on the virtual clock: pass k is due at origin + k * interval
        # (origin: the first record's receive time); `_pass` is the next one, due at `_due`.
        self._origin: float | None = None
        self._pass = 1
        self._due = 0.0
        # The degraded gauge as the last pass run set it (None: no pass ran yet).
        self._gauge: bool | None = None
        #: Housekeeping passes run (`Pipeline.housekeeping` calls), for tests and benchmarks.
        self.housekeeping_passes = 0
        # No pass acts for a patient seen within this long (staleness or idle limit).
        self._quiet_s = min(self.pipeline.stale_s, self.settings.window.idle_ttl_s)
        self._latest = -math.inf  # the latest receive time ingested
        self._executor = ThreadPoolExecutor(1, "inference", initializer=one_inference_thread)
        self._inflight: tuple[list[Job], Float32Array, Future[Float32Array], float] | None = None

    def feed(self, records: Iterable[Record]) -> int:
        """Process records in order; return how many were read.

        Records are decoded `DECODE_CHUNK` at a time (`Pipeline.decode`), then go
        through the pipeline in order, with housekeeping and batch flushes exactly where
        record by record ingestion would have them.
        """
        with replay_tuning():
            return self._feed(RecordBlock.of(chunk) for chunk in _chunks(records, DECODE_CHUNK))

    def feed_recording(self, path: Path) -> int:
        """`feed` the records of a recording, read a block at a time (`read_blocks`), lines
        no longer than a record with the largest payload the codec takes (`line_limit`).

        Raises:
            DataError: A line other than the last does not parse as a record, is too long,
                has a receive time out of range, or the gzip data is corrupt.
        """
        limit = line_limit(self.settings.ingest.max_payload_bytes)
        with replay_tuning():
            return self._feed(read_blocks(path, limit))

    def _feed(self, blocks: Iterable[RecordBlock]) -> int:
        n = 0
        pipeline = self.pipeline
        for block in blocks:
            nows = block.received_at
            keys = [patient_of(topic) for topic in block.topics]
            columns = pipeline.decode(keys, block.payloads, nows, block.validated, block.longest)
            # Runs of accepted single samples are ingested at once; a run ends before a
            # housekeeping time and where the batch fills, so both happen exactly where
            # record by record ingestion would have them.
            index, rest = columns.index, columns.rest
            j = 0  # next column
            position = 0
            while position < len(nows):
                now = nows[position]
                self._housekeep(now)
                if position in rest:
                    self._ingest_one(columns.slice(position, position + 1), nows, position)
                    self._latest = max(self._latest, now)
                    position += 1
                    continue
                run = self._run_length(index, j, nows)
                end = position + run
                if run == len(nows):
                    events = pipeline.ingest(columns, nows)
                else:
                    events = pipeline.ingest(columns.slice(position, end), nows[position:end])
                if events:
                    self.alerts += events
                self._latest = max(self._latest, nows[end - 1])
                self._housekeep(nows[end - 1])  # passes the run spanned: no-ops
                if len(pipeline.batcher) >= self.settings.batch.max_batch:
                    self._flush(nows[end - 1])
                j += run
                position = end
            n += len(nows)
        return n

    def _housekeep(self, now: float) -> None:
        """Bring housekeeping up to `now` (virtual clock): the passes due by then.

        Only passes that act run (`Pipeline.housekeeping_would_act`: evict an idle patient,
        raise 'signal lost'); the others would only set the degraded gauge to the value it
        has, so the last of a skipped stretch runs when the gauge differs. The alerts,
        outcomes and metrics are those of running every pass, one per interval, while the
        cost follows the events, not the span: a recording spanning years takes a few
        passes per sample.
        """
        if self._origin is None:
            self._origin = now
            self._set_pass(1)
        if now < self._due:
            return
        end = self._first_pass_after(now)
        while self._pass < end:
            k = self._first_acting(self._pass, end)
            if k > self._pass and self._gauge != self.pipeline.degraded:
                self._run_pass(k - 1)  # sets the gauge as the skipped passes would have
            if k == end:
                break
            self._run_pass(k)
            self._set_pass(k + 1)
        self._set_pass(end)

    def _pass_time(self, k: int) -> float:
        assert self._origin is not None
        return self._origin + k * self.settings.housekeeping_interval_s

    def _set_pass(self, k: int) -> None:
        self._pass, self._due = k, self._pass_time(k)

    def _run_pass(self, k: int) -> None:
        events = self.pipeline.housekeeping(self._pass_time(k))
        if events:
            self.alerts += events
        self._gauge = self.pipeline.degraded
        self.housekeeping_passes += 1

    def _first_pass_after(self, now: float) -> int:
        """The first pass (from the next one on) due after `now`."""
        assert self._origin is not None
        k = max(self._pass, int((now - self._origin) // self.settings.housekeeping_interval_s))
        while k > self._pass and self._pass_time(k - 1) > now:
            k -= 1
        while self._pass_time(k) <= now:
            k += 1
        return k

    def _first_acting(self, start: int, end: int) -> int:
        """The first pass in [start, end) that would act, or `end` when none would.

        For a given state a later pass can only act more (patients only grow staler: an
        idle or silent patient stays so), so a galloping search finds it with about
        2 log2(k - start) questions (`Pipeline.housekeeping_would_act`), and the answer
        that none acts takes two.
        """
        would_act = self.pipeline.housekeeping_would_act
        if start >= end or would_act(self._pass_time(start)):
            return start
        if not would_act(self._pass_time(end - 1)):  # the common answer, in one question
            return end
        low, step = start, 1  # low: known not to act
        while True:
            probe = low + step
            if probe >= end:
                high = end
                break
            if would_act(self._pass_time(probe)):
                high = probe
                break
            low, step = probe, step * 2
        while high - low > 1:
            middle = (low + high) // 2
            if would_act(self._pass_time(middle)):
                high = middle
            else:
                low = middle
        return high

    def _ingest_one(self, decoded: DecodedColumns, nows: list[float], position: int) -> None:
        now = nows[position]
        events = self.pipeline.ingest(decoded, [now])
        if events:
            self.alerts += events
        if len(self.pipeline.batcher) >= self.settings.batch.max_batch:
            self._flush(now)

    def _run_length(self, index: list[int], j: int, nows: list[float]) -> int:
        """How many columns from `j` on form one run for `Pipeline.ingest` (at least one).

        A run is consecutive positions received in time order (from the latest receive
        time so far on: an earlier one could make a patient staler), no longer than the
        room left in the batch (each sample queues at most one job), and spans no
        housekeeping pass that might act (`_spans_acting_pass`). The passes it spans are
        left to `_housekeep` after the run, which skips them: their result is empty, and
        monitoring is not degraded (checked) and the run sheds nothing, so the degraded
        gauge they would set is the same too.
        """
        start = index[j]
        room = self.settings.batch.max_batch - len(self.pipeline.batcher)
        limit = min(len(index) - j, max(room, 1))
        first = nows[start]
        if first < self._latest:
            return 1
        spans = self._spans_acting_pass
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

    def _spans_acting_pass(self, first: float, last: float) -> bool:
        """Whether samples received from `first` to `last` (in order) would span a
        housekeeping pass that might act, one due after `first` (`_housekeep(first)` ran)
        and by `last`.

        Asked now: the run's samples make the patients held fresher, so a pass that cannot
        act now cannot act then (`Pipeline.housekeeping_would_act`). A patient the run
        admits is last seen at `first` or later, so no pass within the shorter of the
        staleness and idle limits after `first` can act for it either; beyond that the
        run ends (without this, a run starting on an empty store, as at the start of a
        recording, skipped every pass it spanned).
        """
        k = self._first_pass_after(last) - 1  # the last pass due by `last`
        if k < self._pass:
            return False
        if self.pipeline.degraded:
            return True
        at = self._pass_time(k)
        return at - first > self._quiet_s or self.pipeline.housekeeping_would_act(at)

    def finish(self, now: float | None = None) -> None:
        """Score everything still queued, then stop the inference thread."""
        self._flush(now if now is not None else 0.0, everything=True)
        self._collect()
        self._executor.shutdown()

    def close(self) -> None:
        """Stop the inference thread without scoring what is queued (a failed run)."""
        self._inflight = None
        self._executor.shutdown(cancel_futures=True)

    def _flush(self, now: float, everything: bool = False) -> None:
        # The forward of batch k runs on the inference thread while this thread decodes
        # the records of batch k+1; batches are still scored strictly in order.
        while len(self.pipeline.batcher):
            jobs = self.pipeline.take_batch()
            windows = self.pipeline.stack(jobs)
            future = self._executor.submit(self.predictor.predict, windows)
            self._collect()
            self._inflight = (jobs, windows, future, now)
            if not everything:
                return

    def _collect(self) -> None:
        if self._inflight is None:
            return
        jobs, windows, future, now = self._inflight
        self._inflight = None
        self._score(jobs, windows, future.result(), now)

    def _score(
        self, jobs: list[Job], windows: Float32Array, predictions: Float32Array, now: float
    ) -> None:
        self.alerts += self.pipeline.score(jobs, predictions, now, live=False, windows=windows)
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
        limits=runner.pipeline.limits,
    )
