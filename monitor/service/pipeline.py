"""The daemon's synchronous pipeline: codec -> windows -> batcher -> (model) -> detector.

The asyncio shell (live) and the offline replayer (virtual clock) drive the same object, so
a recording replayed offline gives the alerts the live daemon gave. Time is always passed
in. Every received unit ends in exactly one counted outcome (docs/metrics.md):

* a rejected payload: ``invalid`` (reason in ``monitor_invalid_messages_total``);
* each sample of an accepted payload: ``warming_up``, ``duplicate``, ``late``,
  ``refused_cap``, ``invalid`` (its clock jumped ahead of the patient's learned offset:
  ``clock_skew``, docs/time.md), ``shed``, ``scored`` or ``failed`` (the last three once
  its window has been queued; ``failed``: the model forward of its batch raised).

A patient whose data arrives but who is not monitored (refused at the patient cap, or
every message refused for lack of a vital) has a ``patient_refused`` technical alert, and
while any has one the system has ``patients_refused`` (docs/reliability.md).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import structlog

from monitor.core.alerts import TECHNICAL_SEVERITY, AlertEvent
from monitor.core.batching import MicroBatcher
from monitor.core.codec import (
    CodecLimits,
    Decoded,
    DecodedColumns,
    DecodedSample,
    Rejection,
    SingleFields,
    decode,
    decode_columns,
)
from monitor.core.detector import Detector, GainCurves, alarm_gains, unknown_per_vital
from monitor.core.scale import ResidualScale
from monitor.core.technical import TechnicalAlarms
from monitor.core.types import REJECT_REASONS, BoolArray, Float32Array, FloatArray
from monitor.core.vitals import BUILTIN, Registry
from monitor.core.windows import WindowStore
from monitor.service.metrics import Metrics, observe_many
from monitor.settings import Settings, SettingsError

_S = TypeVar("_S", bound=np.generic)

log = structlog.get_logger("monitor")


@dataclass(slots=True)
class Job:
    """One sample waiting to be scored against the prediction from its preceding window."""

    patient_id: str
    context: Float32Array
    actual: FloatArray
    t: float
    seq: int
    received_at: float


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What the pipeline needs to know about the model it serves."""

    features: tuple[str, ...]
    window: int
    residual_sigma: FloatArray
    version: str
    observed_mask: bool = False
    sample_period_s: float = 1.0
    signals: Registry = BUILTIN
    flatline_samples: tuple[int, ...] | None = None
    calibration: GainCurves | None = None
    #: The residual scale's clip (`ResidualScale.clip_at`; None: the |z| < 3 rule).
    residual_clip_at: float | None = None


#: A vital repeating one exact value this many samples in a row is a stuck sensor, unless
#: the model card learned another run for it or its registered signal declares one.
FLATLINE_SAMPLES = 5

#: Technical alerts that an accepted sample of their patient closes: its data is back.
_DATA_BACK_CLOSES = ("artifact", "clock_skew", "patient_refused", "signal_lost")

#: Every final outcome of a received unit (`monitor_messages_total{outcome}`).
OUTCOMES = (
    "scored",
    "warming_up",
    "duplicate",
    "late",
    "refused_cap",
    "shed",
    "invalid",
    "dropped",
    "failed",
)

#: Order state changes counted as suspect (`monitor_order_suspect_total{kind}`).
ORDER_SUSPECT = ("seq_jump", "clock_back", "clock_jump")

#: Called with (reason, rejection) for every refused payload: the shell logs, rate-limited.
RejectHook = Callable[[Rejection], None]


class Pipeline:
    """Everything between a payload and its verdicts, except the model forward itself.

    Args:
        model: Features, window length, residual sigma and version of the served model.
        settings: The daemon's settings (ingest limits, windows, batching, detector).
        metrics: Where outcomes are counted.
        on_reject: Optional hook for refused payloads (logging).
    """

    def __init__(
        self,
        model: ModelInfo,
        settings: Settings,
        metrics: Metrics,
        on_reject: RejectHook | None = None,
    ) -> None:
        self.model = model
        self.settings = settings
        self.metrics = metrics
        self._on_reject = on_reject
        try:
            # The settings' signals and the card's (what the model was trained on); for a
            # signal in both, the settings' entry (its flatline_samples), same bounds only.
            self.signals = settings.registry().merge(model.signals)
        except ValueError as exc:
            raise SettingsError([f"signals: {exc}"]) from None
        unknown = unknown_per_vital(settings.detector, self.signals)
        if unknown:
            raise SettingsError(
                [f"detector.per_vital names unknown vital(s) or signal(s): {', '.join(unknown)}"]
            )
        #: The codec's bounds for this model and these settings (what a sample must pass).
        ingest = settings.ingest
        # The codec refuses only what no learned clock offset could explain; the window
        # store checks each sample against its patient's offset (docs/time.md).
        self.limits = CodecLimits(
            max_bytes=ingest.max_payload_bytes,
            max_future_skew_s=ingest.max_future_skew_s + ingest.max_clock_offset_s,
            max_age_s=ingest.max_age_s,
            partial=model.observed_mask,
            signals=self.signals,
        )
        self._flat_groups = _flatline_groups(model, self.signals)
        w = settings.window
        self.windows = WindowStore(
            model.window,
            len(model.features),
            max_patients=w.max_patients,
            idle_ttl_s=w.idle_ttl_s,
            max_gap_s=w.gap_s(model.sample_period_s),
            masked=model.observed_mask,
            period_s=model.sample_period_s,
            max_seq_jump=w.max_seq_jump,
            max_future_skew_s=ingest.max_future_skew_s,
            max_offset_s=ingest.max_clock_offset_s,
            # A skew tolerance as wide as any offset learned (the demo's 1e9) trusts device
            # clocks outright: there is nothing to report.
            clock_alert_s=(
                math.inf
                if ingest.max_future_skew_s >= ingest.max_clock_offset_s
                else ingest.clock_offset_alert_s
            ),
        )
        #: Silence after which a patient is 'signal lost' (a lower bound: a slower stream
        #: stretches it, `WindowStore.stale`).
        self.stale_s = w.stale_s(model.sample_period_s)
        b = settings.batch
        self.batcher: MicroBatcher[Job] = MicroBatcher(
            b.max_batch, b.max_wait_ms / 1000.0, b.max_pending
        )
        self.detector = Detector(model.features, settings.detector, model_version=model.version)
        self.scale = ResidualScale(
            model.residual_sigma, masked=model.observed_mask, clip_at=model.residual_clip_at
        )
        self.gain = alarm_gains(model.calibration, model.features, settings.detector)
        #: Open technical alerts and refused patients (at most `max_patients` of them).
        self.alarms = TechnicalAlarms(model.version, w.max_patients)
        self.degraded = False
        # Technical alert changes of `_push_one` (it returns the job), taken by its callers.
        self._side: list[AlertEvent] = []
        # patient -> per vital, seq of its last stuck sample (only while one is in a window)
        self._stuck_seq: dict[str, FloatArray] = {}
        self._error_hists = [metrics.prediction_error.labels(v) for v in model.features]
        self._outcomes = {o: metrics.messages.labels(o) for o in OUTCOMES}
        # Read at scrape time: nothing to update per message on the hot path.
        metrics.active_patients.set_function(lambda: len(self.windows))
        metrics.pending_jobs.set_function(lambda: len(self.batcher))
        metrics.patients_refused.set_function(lambda: self.alarms.refused)
        # Every label value exists from the start (at 0): dashboards and rate() see a series
        # before the first event, and a typo in a label cannot hide as a missing series.
        for reason in REJECT_REASONS:
            metrics.invalid.labels(reason)
        for kind in ORDER_SUSPECT:
            metrics.order_suspect.labels(kind)
        for dropped in ("queue_full", "alert_queue_full", "shutdown"):
            metrics.dropped.labels(dropped)
        for technical in TECHNICAL_SEVERITY:
            metrics.technical_alerts.labels(technical)
        for vital in model.features:
            for severity in ("low", "medium", "high"):
                metrics.alerts.labels(vital, severity)
        for kind in ("physiological", "technical"):
            metrics.active_alerts.labels(kind)

    def gains(self) -> dict[str, float]:
        """Each feature's alarm gain (z is divided by it; 1.0 without calibration)."""
        return dict(zip(self.model.features, self.gain.tolist(), strict=True))

    @staticmethod
    def patient_of(topic: str) -> str | None:
        """Return the topic's last level (the patient id by convention), or None."""
        _, sep, last = topic.rpartition("/")
        return last if sep else None

    def ingest(self, topic: str, payload: bytes, now: float) -> list[AlertEvent]:
        """Decode one payload, update windows and queue ready windows for inference.

        Args:
            topic: The MQTT topic it arrived on.
            payload: The raw body.
            now: Receive time, unix seconds (wall clock live; record time offline).

        Returns:
            Technical alert changes it caused (artifact raised or cleared, signal restored).
        """
        decoded = decode(
            payload,
            topic_patient_id=self.patient_of(topic),
            features=self.model.features,
            now=now,
            limits=self.limits,
        )
        return self.ingest_decoded(decoded, now)

    def decode_many(
        self, topics: Sequence[str], payloads: Sequence[bytes], nows: Sequence[float]
    ) -> list[Decoded | Rejection]:
        """Decode many payloads at once, as `ingest` would decode each (codec `decode_many`).

        Decoding depends on nothing but the payload, its topic and receive time, so a
        caller holding many payloads (offline replay) decodes them ahead and then passes
        each result, in order, to `ingest_decoded`: the same outcomes as `ingest` one by one.
        """
        return self.decode_columns(topics, payloads, nows).results()

    def decode_columns(
        self,
        topics: Sequence[str],
        payloads: Sequence[bytes],
        nows: Sequence[float],
        validated: Sequence[SingleFields | None] | None = None,
        longest: int = 0,
    ) -> DecodedColumns:
        """`decode_many`'s results with the common case in columns (for `ingest_samples`).

        Args:
            topics: Topic of each payload.
            payloads: The raw bodies.
            nows: Receive time of each.
            validated: Messages already validated (codec `decode_columns`), or None.
            longest: A bound on the size of each payload with a validated message. Past the
                size limit, the validated messages are set aside and every payload is
                checked as usual.
        """
        patient_of = self.patient_of
        return decode_columns(
            payloads,
            [patient_of(topic) for topic in topics],
            nows,
            features=self.model.features,
            limits=self.limits,
            validated=validated if longest <= self.limits.max_bytes else None,
        )

    def ingest_decoded(self, decoded: Decoded | Rejection, now: float) -> list[AlertEvent]:
        """The rest of `ingest` for a payload already decoded (see `decode_many`).

        Args:
            decoded: The codec's result for the payload.
            now: Its receive time, the `now` it was decoded with.

        Returns:
            Technical alert changes it caused, as `ingest` returns them.
        """
        if isinstance(decoded, Rejection):
            return self._reject(decoded, now)
        return self._accept(decoded, now)

    def ingest_samples(
        self,
        patient_ids: Sequence[str],
        t: Sequence[float],
        seq: Sequence[int],
        values: FloatArray,
        now: Sequence[float],
    ) -> list[AlertEvent]:
        """`ingest_decoded` over a run of accepted single-sample payloads, in less time.

        Sample i is the payload ``Decoded(patient_ids[i], [DecodedSample(t[i], seq[i],
        values[i])])`` received at ``now[i]``. The outcome is exactly that of
        `ingest_decoded` on each in order: the same windows, jobs queued in the same order,
        counts and technical alerts. Plainly ready samples take `WindowStore.push_ready`;
        the others (and every sample of a patient with an open technical alert) go through
        the one-sample path afterwards, in order, which is the same because patients are
        independent. A run that could make the store evict (too full) takes the one-sample
        path throughout: eviction depends on every other patient's state at that moment.

        Args:
            patient_ids: Each sample's patient.
            t: Sample times, seconds.
            seq: Sequence numbers.
            values: ``(n, F)`` float64, model feature order (each row becomes the job's
                actual values, as a view).
            now: Receive times, seconds.

        Returns:
            Technical alert changes, as the `ingest_decoded` calls would return them.
        """
        n = len(patient_ids)
        windows = self.windows
        if len(windows) + n > windows.max_patients:
            events: list[AlertEvent] = []
            for i in range(n):
                sample = DecodedSample(t[i], seq[i], values[i])
                events += self._accept(Decoded(patient_ids[i], [sample]), now[i])
            return events
        plain, contexts, missing = windows.push_ready(
            patient_ids, t, seq, values, now, skip=self.alarms.by_patient
        )
        if missing:
            self.metrics.sequence_gaps.inc(missing)
        events = []
        if plain.all():  # the common run: every sample ready, in order
            queued = list(map(Job, patient_ids, contexts, values, t, seq, now))
            # Least recently seen order: by each patient's last sample, as `push` leaves it.
            windows.touch(reversed(dict.fromkeys(reversed(patient_ids))))
            keys, stamps = patient_ids, now
        else:
            jobs: list[Job | None] = [None] * n
            accepted = plain.tolist()
            rows = np.flatnonzero(plain).tolist()
            for row, context in zip(rows, contexts, strict=True):
                jobs[row] = Job(patient_ids[row], context, values[row], t[row], seq[row], now[row])
            for i in np.flatnonzero(~plain).tolist():
                pid, at = patient_ids[i], now[i]
                jobs[i], accepted[i] = self._push_one(pid, t[i], seq[i], values[i], at)
                events += self._taken(pid, accepted[i], at)
            last: dict[str, None] = {}
            for pid, ok in zip(patient_ids, accepted, strict=True):
                if ok:
                    last.pop(pid, None)
                    last[pid] = None
            windows.touch(last)
            queued = [job for job in jobs if job is not None]
            keys, stamps = [j.patient_id for j in queued], [j.received_at for j in queued]
        if len(self.batcher) + len(queued) <= self.batcher.max_pending:
            self.batcher.add_many(keys, queued, stamps)
        else:  # some may be shed: each at its own time, as `ingest_decoded` does
            for job in queued:
                shed = self.batcher.add(job.patient_id, job, job.received_at)
                events += self._queued(shed, job.received_at)
        return events

    def _push_one(
        self, pid: str, t: float, seq: int, values: FloatArray, now: float
    ) -> tuple[Job | None, bool]:
        """Push one sample into its window and count its outcome; return its job, if ready,
        and whether the window took the sample. Technical alert changes go to `_side`."""
        outcome, context, gap_reset, missing, evicted, order, clock = self.windows.push(
            pid, t, seq, values, now
        )
        for gone in evicted:
            self._side += self._forget(gone, now)
            self.metrics.evictions.inc()
        if missing:
            self.metrics.sequence_gaps.inc(missing)
        if gap_reset:
            self.metrics.window_resets.inc()
        if order:
            self._order_changed(pid, order, seq)
        if clock:
            self._clock_changed(pid, clock, now)
        if context is None:
            if outcome == "clock_skew":  # ahead of its learned clock: a jump, refused
                self.metrics.invalid.labels("clock_skew").inc()
                self._outcomes["invalid"].inc()
                self._side += self._open(pid, "clock_skew", None, now)
                return None, False
            if outcome == "refused_cap":
                self._side += self._counted(self.alarms.refuse(pid, None, now))
            self._outcomes[outcome].inc()
            return None, outcome == "warming_up"
        return Job(pid, context, values, t, seq, now), True

    def _taken(self, pid: str, accepted: bool, now: float) -> list[AlertEvent]:
        """The side events of `_push_one`, and, when the window took the sample, the close
        of what the absence of this patient's data opened (never for a late or refused
        one: its data is not back, and closing would flap against housekeeping)."""
        events, self._side = self._side, []
        if accepted:
            self.alarms.held(pid)
        if accepted and pid in self.alarms.by_patient:
            events += self._counted(self.alarms.close_all(pid, _DATA_BACK_CLOSES, now))
            events += self._counted(self.alarms.unrefuse(pid, now))
        return events

    def _order_changed(self, pid: str, order: str, seq: int) -> None:
        """Count (and for a restart, log once) a discontinuity the window store accepted."""
        if order == "restart":
            self.metrics.device_restarts.inc()
            # No patient id in a log line (docs/reliability.md); the counter says which kind.
            log.info("device_restart", seq=seq)
        elif order in ORDER_SUSPECT:
            self.metrics.order_suspect.labels(order).inc()
            log.info("order_suspect", kind=order, seq=seq)

    def _clock_changed(self, pid: str, clock: str, now: float) -> None:
        """Report a device clock offset once (a low technical alert), close it when gone."""
        if clock == "offset":
            offset = self.windows.clock_offset(pid) or 0.0
            log.info("clock_offset", offset_s=round(offset, 3))
            self._side += self._open(pid, "clock_offset", None, now)
        else:
            self._side += self._close(pid, "clock_offset", None, now)

    def _reject(self, rejection: Rejection, now: float) -> list[AlertEvent]:
        self.metrics.invalid.labels(rejection.reason).inc()
        self._outcomes["invalid"].inc()
        if self._on_reject is not None:
            self._on_reject(rejection)
        pid = rejection.patient_id
        if rejection.reason in ("artifact", "clock_skew") and pid is not None:
            if pid in self.windows:
                return self._open(pid, rejection.reason, rejection.vital, now)
            # Not held: tracked (bounded) so that it expires when the id goes silent.
            return self._counted(
                self.alarms.open_unheld(pid, rejection.reason, rejection.vital, now)
            )
        if rejection.reason == "missing_vital" and pid is not None and pid not in self.windows:
            # Every message of this patient lacks a vital the model needs: never monitored.
            return self._counted(self.alarms.refuse(pid, rejection.vital, now))
        return []

    def _accept(self, decoded: Decoded, now: float) -> list[AlertEvent]:
        pid = decoded.patient_id
        events: list[AlertEvent] = []
        taken = False
        push_one, add = self._push_one, self.batcher.add
        for t, seq, values in decoded.samples:
            job, accepted = push_one(pid, t, seq, values, now)
            taken |= accepted
            if job is not None:
                shed = add(pid, job, now)
                if shed:
                    events += self._queued(shed, now)
        return self._taken(pid, taken, now) + events

    def _queued(self, shed: list[Job], now: float) -> list[AlertEvent]:
        """Count jobs shed while queueing; the first shed degrades monitoring."""
        if not shed:
            return []
        self._outcomes["shed"].inc(len(shed))
        if self.degraded:
            return []
        self.degraded = True
        return self._open(None, "monitoring_degraded", None, now)

    def inference_failed(self, jobs: Sequence[Job]) -> None:
        """Count the jobs of a batch whose forward raised: outcome `failed`, not scored."""
        self._outcomes["failed"].inc(len(jobs))

    def take_batch(self) -> list[Job]:
        """Remove and return up to `max_batch` queued jobs, oldest first."""
        jobs = self.batcher.take(self.settings.batch.max_batch)
        return jobs

    def stack(self, jobs: Sequence[Job]) -> Float32Array:
        """Stack the jobs' context windows into one (B, window, F) array for the model."""
        return _rows([j.context for j in jobs])

    def score(
        self,
        jobs: Sequence[Job],
        predictions: Float32Array,
        now: float,
        *,
        live: bool = True,
        windows: Float32Array | None = None,
    ) -> list[AlertEvent]:
        """Compare each job's actual sample with its prediction and run the detector.

        Args:
            jobs: The batch, in the order it was taken.
            predictions: Model output, shape (len(jobs), F), raw units.
            now: Verdict time (for end-to-end latency when `live`).
            live: Observe end-to-end latency (meaningless on a virtual clock).
            windows: The jobs' context windows as `stack` gave them to the model, if the
                caller kept them; stacked here otherwise.

        Returns:
            Physiological alert changes, in job order.
        """
        if not jobs:
            return []
        if windows is None:
            windows = self.stack(jobs)
        patient_ids = [j.patient_id for j in jobs]
        actual = _rows([j.actual for j in jobs])
        residuals = actual - predictions
        f = len(self.model.features)
        values = windows[:, :, :f]
        # NaN residual: the vital is not in this sample, or its window has no value (a
        # model with an observed mask): no z, the scale keeps its state, the detector
        # sees a calm sample and the error histogram skips it.
        z = self.scale.z_batch(patient_ids, windows, residuals)
        absz = np.abs(z)
        partial = self.model.observed_mask and bool(np.isnan(absz).any())
        for i, hist in enumerate(self._error_hists):
            column = absz[:, i]
            observe_many(hist, column[~np.isnan(column)] if partial else column)
        if partial:
            z = np.nan_to_num(z, nan=0.0)
        z /= self.gain  # calibrated units from here on (docs/detection.md)
        self.metrics.batch_size.observe(len(jobs))
        stuck: BoolArray = np.zeros(actual.shape, dtype=bool)
        actual32 = actual.astype(np.float32)
        for run, lo, hi in self._flat_groups:  # slices: views, no copies
            tail = values[:, 1 - run :, lo:hi]
            stuck[:, lo:hi] = np.all(tail == actual32[:, None, lo:hi], axis=1)
            if self.model.observed_mask:  # a carried-forward value is not a stuck sensor
                stuck[:, lo:hi] &= np.all(windows[:, 1 - run :, f + lo : f + hi] == 1.0, axis=1)
        any_stuck: list[bool] = np.any(stuck, axis=1).tolist()
        stuck_seq = self._stuck_seq
        for row, job in enumerate(jobs):
            if any_stuck[row] or job.patient_id in stuck_seq:
                z[row] = self._untrusted_to_zero(job, stuck[row], z[row])
        events = self.detector.update_many(
            patient_ids,
            z,
            [j.t for j in jobs],
            [j.seq for j in jobs],
            actual,
            predictions,
        )
        for event in events:
            if event.state == "raised" and event.vital is not None:
                self.metrics.alerts.labels(event.vital, event.severity).inc()
        events += self._flatlines(jobs, stuck, any_stuck)
        if live:
            received = np.fromiter((j.received_at for j in jobs), np.float64, len(jobs))
            observe_many(self.metrics.end_to_end_latency, np.maximum(0.0, now - received))
        self._outcomes["scored"].inc(len(jobs))
        if self.degraded and len(self.batcher) < self.settings.batch.max_pending // 2:
            self.degraded = False
            events += self._close(None, "monitoring_degraded", None, now)
        return events

    def _untrusted_to_zero(self, job: Job, stuck: BoolArray, z: FloatArray) -> FloatArray:
        """Zero the z of vitals whose window holds a stuck stretch (or that are stuck now).

        A stuck sensor's repeated value fills the window, and for `window` samples after it
        recovers the model predicts from that stale value: its residuals then measure the
        sensor's recovery, not the patient. The technical 'flatline' alert reports the
        sensor; the physiological detector sees those samples as calm. Decided row by row
        from this patient's own history, so the batch size cannot change the outcome.
        """
        last = self._stuck_seq.get(job.patient_id)
        if last is None:
            last = self._stuck_seq[job.patient_id] = np.full(z.shape, -np.inf)
        last[stuck] = job.seq
        untrusted = job.seq - last <= self.model.window
        if not untrusted.any():
            del self._stuck_seq[job.patient_id]
            return z
        out: FloatArray = np.where(untrusted, 0.0, z)
        return out

    def _flatlines(
        self, jobs: Sequence[Job], stuck: BoolArray, any_stuck: list[bool]
    ) -> list[AlertEvent]:
        """Raise 'flatline' (a stuck sensor) when a vital repeats one exact value.

        Real measurements with any noise never repeat exactly `FLATLINE_SAMPLES` times, and
        quantised ones repeat no longer than their card's learned run; the residual
        detector cannot see a sensor stuck near its prediction. `stuck` (B, F): the row's
        sample equals the vital's run length (`_flatline_groups`) - 1 samples before it.
        """
        events: list[AlertEvent] = []
        for row, job in enumerate(jobs):
            # Checked row by row: an alert opened by an earlier row of this batch must be
            # closable by a later row of the same patient, whatever the batch's size.
            if not any_stuck[row] and job.patient_id not in self.alarms.flat_open:
                continue
            for i, vital in enumerate(self.model.features):
                if stuck[row, i]:
                    events += self._open(job.patient_id, "flatline", vital, job.t)
                else:
                    events += self._close(job.patient_id, "flatline", vital, job.t)
        return events

    def housekeeping(self, now: float) -> list[AlertEvent]:
        """Evict idle patients, raise 'signal lost' for silent ones and end the refused
        episodes of patients silent for as long.

        Args:
            now: Current time, same clock as `ingest`.
        """
        events: list[AlertEvent] = []
        for pid in self.windows.evict_idle(now):
            self.metrics.evictions.inc()
            events += self._forget(pid, now)
        for pid in self.windows.stale(now, self.stale_s):
            if not self.alarms.is_open(pid, "signal_lost"):
                events += self._open(pid, "signal_lost", None, now)
        alarms = self.alarms
        for pid in alarms.silent_refused(now, self.stale_s):
            events += self._counted(alarms.close_all(pid, None, now, "expired"))
            events += self._counted(alarms.unrefuse(pid, now))
        for pid in alarms.silent_unheld(now, self.stale_s):
            alarms.forget_unheld(pid)
            if pid not in self.windows:
                events += self._counted(alarms.close_all(pid, None, now, "expired"))
        self.metrics.degraded.set(1 if self.degraded else 0)
        return events

    def housekeeping_would_act(self, now: float) -> bool:
        """Tell whether `housekeeping(now)` would change anything but the degraded gauge.

        It would not while no patient is idle past the eviction limit, every stale one
        already has its 'signal lost' alert open and no refused patient has been silent
        for the staleness limit. Samples only make patients fresher, so the answer stays
        False for a pass at `now` after more samples.
        """
        windows, limits = self.windows, self.settings.window
        alarms = self.alarms
        if (
            windows.stale(now, limits.idle_ttl_s)
            or alarms.silent_refused(now, self.stale_s)
            or alarms.silent_unheld(now, self.stale_s)
        ):
            return True
        return any(
            not alarms.is_open(pid, "signal_lost") for pid in windows.stale(now, self.stale_s)
        )

    def _forget(self, pid: str, now: float) -> list[AlertEvent]:
        """Drop an evicted patient's state, and end its technical alerts with an `expired`
        event: nothing watches them any more (an open alert of a departed patient would
        stay open forever and hold memory)."""
        self.detector.forget(pid)
        self.scale.forget(pid)
        self._stuck_seq.pop(pid, None)
        return self._counted(self.alarms.close_all(pid, None, now, "expired"))

    def _open(
        self, pid: str | None, reason: str, vital: str | None, now: float
    ) -> list[AlertEvent]:
        return self._counted(self.alarms.open(pid, reason, vital, now))

    def _close(
        self, pid: str | None, reason: str, vital: str | None, now: float
    ) -> list[AlertEvent]:
        return self._counted(self.alarms.close(pid, reason, vital, now))

    def _counted(self, events: list[AlertEvent]) -> list[AlertEvent]:
        """Count technical alert changes: raises by reason, and the open alerts gauge."""
        if events:
            for event in events:
                if event.state == "raised":
                    self.metrics.technical_alerts.labels(event.reason).inc()
            self.metrics.active_alerts.labels("technical").set(len(self.alarms))
        return events

    def drain_all(self) -> list[Job]:
        """Take every queued job (shutdown: the last batches)."""
        jobs: list[Job] = []
        while len(self.batcher):
            jobs += self.batcher.take(self.settings.batch.max_batch)
        return jobs


def model_info_from_card(card: object) -> ModelInfo:
    """Build `ModelInfo` from a `ModelCard` (kept loose so the core stays torch-free)."""
    from monitor.model.card import ModelCard

    assert isinstance(card, ModelCard)
    learned = card.flatline
    return ModelInfo(
        features=tuple(card.features),
        window=card.window,
        residual_sigma=np.asarray(card.residual_sigma, dtype=np.float64),
        version=card.model_version,
        observed_mask=card.observed_mask,
        sample_period_s=card.sample_period_s,
        signals=card.registry(),
        flatline_samples=tuple(
            learned[f].samples if f in learned else FLATLINE_SAMPLES for f in card.features
        ),
        calibration=card.calibration,
        residual_clip_at=card.residual_clip_at,
    )


def flatline_samples(model: ModelInfo, signals: Registry) -> list[int]:
    """The run of identical values that raises 'flatline', per feature of the model.

    A registered signal's declared `flatline_samples` wins; else the card's learned rule
    (`ModelInfo.flatline_samples`); else `FLATLINE_SAMPLES`.
    """
    learned = model.flatline_samples or (FLATLINE_SAMPLES,) * len(model.features)
    out = []
    for name, run in zip(model.features, learned, strict=True):
        declared = signals[name].flatline_samples if name in signals else None
        out.append(declared or run)
    return out


def _flatline_groups(model: ModelInfo, signals: Registry) -> list[tuple[int, int, int]]:
    """Consecutive features with one flatline run length: (run, first, end) column ranges.

    A run longer than the window plus the new sample cannot be seen in one window: such a
    vital gets no flatline check (its normal runs are longer than the model's memory).
    """
    groups: list[tuple[int, int, int]] = []
    for i, run in enumerate(flatline_samples(model, signals)):
        if run - 1 > model.window:
            continue
        if groups and groups[-1][0] == run and groups[-1][2] == i:
            groups[-1] = (run, groups[-1][1], i + 1)
        else:
            groups.append((run, i, i + 1))
    return groups


def _rows(arrays: Sequence[npt.NDArray[_S]]) -> npt.NDArray[_S]:
    """Stack equal-shape arrays on a new first axis: `np.stack`, without its per-array cost.

    One `np.concatenate` along the first axis and a reshape: no per-array call at all.
    For a batch of 1,024 windows of 120 x 6, 313 us against 534 us when each array was
    flattened first (which was itself about a seventh of `np.stack`'s time); for 1,024
    rows of 6, 125 against 326 us (numpy 2, measured).
    """
    out = np.concatenate(arrays)
    return out.reshape(len(arrays), *arrays[0].shape)
