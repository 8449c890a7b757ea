"""Scoring a batch: predictions and samples -> z -> alert changes, on one patient table.

The detection policy after the model forward, in one pure object: the per-patient residual
scale, the settling of a value back after a silence, the calibrated gain, the stuck-sensor
distrust, the detector and its raise rules, and the `flatline` technical alerts. They
share one patient table (`SlotMap`, the window store's in the pipeline); each batch is
placed in it once and the placement is passed to all of them. The service counts and logs what this
returns (`monitor.engine.pipeline.Pipeline.score`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from monitor.core.alerts import AlertEvent
from monitor.core.detector import Detector
from monitor.core.follow import AlarmFollow
from monitor.core.lost import LostVitals
from monitor.core.rhythm import BeatRhythm
from monitor.core.scale import ResidualScale
from monitor.core.settle import Settling, first_divisor, starts
from monitor.core.slots import Placement, SlotMap
from monitor.core.stuck import StuckSensors
from monitor.core.technical import TechnicalAlarms
from monitor.core.types import BoolArray, Float32Array, FloatArray

__all__ = [
    "GAP_RATIO",
    "SLOW_STREAM",
    "Scored",
    "Scorer",
    "beat_rhythm",
]

#: A patient whose last interval is at least this many of the model's sample periods is a
#: slow stream (once-a-minute numerics on a 1 Hz model): outside what the model was trained
#: on, so its scale and alarm level follow its own tails (docs/detection.md, "Slow streams").
#: Far above a 1 Hz stream's jitter and its short dropouts.
SLOW_STREAM = 10.0
#: A sample at least this many of its stream's intervals after the one before it (one
#: sample missing, or more) is judged against a wider scale: sqrt of that ratio, at most
#: `GAP_MAX_WIDEN`, settling over the next values (docs/detection.md, "After a gap").
GAP_RATIO = 2.0


@dataclass(frozen=True, slots=True)
class Scored:
    """What scoring a batch gave.

    Attributes:
        absz: ``(B, F)`` |z| in each patient's own scale, before the gain (NaN: no z, the
            vital is not in the sample or its window has no value).
        alerts: Physiological alert changes, in row order.
        technical: `flatline` alert changes, in row order.
    """

    absz: FloatArray
    alerts: list[AlertEvent]
    technical: list[AlertEvent]


class Scorer:
    """Residual scale, gain, stuck sensors and detector over one patient table.

    Args:
        patients: The patient table that `scale`, `detector` and `stuck` were built with.
        scale: Per-patient residual sigma.
        detector: The alert state machines and raise rules.
        stuck: Stuck-sensor detection and distrust.
        gain: Per-feature alarm gain (z is divided by it: calibrated units).
        alarms: The technical alarms (the `flatline` alerts are opened and closed here).
        rhythm: The premature beats of beat-waveform features, for the detector's
            `premature` rule (None: the model has none, or the rule is off).
        lost: The vitals that stopped arriving, for the `vital_lost` alerts (None: not
            watched: a model without an observed mask refuses a sample lacking a vital).
    """

    def __init__(
        self,
        patients: SlotMap,
        scale: ResidualScale,
        detector: Detector,
        stuck: StuckSensors,
        gain: FloatArray,
        alarms: TechnicalAlarms,
        rhythm: BeatRhythm | None = None,
        lost: LostVitals | None = None,
    ) -> None:
        self.patients = patients
        self.rhythm = rhythm
        self.lost = lost
        self.scale = scale
        self.detector = detector
        self.stuck = stuck
        self.gain = gain
        self.alarms = alarms
        #: The widened scale of values after a silence, settling (`monitor.core.settle`).
        self.settle = Settling(len(gain), patients=patients)
        cfg = detector.config
        #: The per-patient follow of the alarm level (`detector.follow_level`; None: off),
        #: for every patient of a model whose card clips the residual scale (trained on a
        #: real recording: heavy-tailed residuals), and otherwise for the rows `score` is
        #: told come from a slow stream. The simulator's Gaussian residuals and
        #: anomaly-dense 1 Hz patients keep the fixed levels, as they keep the unclipped
        #: scale (docs/detection.md, "The alarm level follows each patient").
        self.follow = (
            None
            if cfg.follow_level is None
            else AlarmFollow(
                len(gain),
                level=cfg.follow_level,
                share=cfg.follow_share,
                step=cfg.follow_step,
                max_gain=cfg.follow_max_gain,
                patients=patients,
            )
        )

    @property
    def uses_slow(self) -> bool:
        """Whether `score` uses its `slow` rows: the scale is not clipped (a clipped
        model's rows all have the winsorised scale and the follow already)."""
        return self.scale.clip_at is None

    def score(
        self,
        patient_ids: Sequence[str],
        windows: Float32Array,
        actual: FloatArray,
        predictions: Float32Array,
        t: Sequence[float],
        seq: Sequence[int],
        placed: Placement | None = None,
        slow: BoolArray | None = None,
        gap: FloatArray | None = None,
    ) -> Scored:
        """Score a batch in row order (a patient's rows in order, as one by one).

        Args:
            patient_ids: Patient of each row.
            windows: The context windows the predictions came from, ``(B, window, F)``
                (``2F`` with observed flags).
            actual: Measured values, ``(B, F)``.
            predictions: Model output, ``(B, F)``, raw units.
            t: Sample time of each row.
            seq: Sample sequence number of each row.
            placed: The batch placed in `patients` with no absent row (the pipeline's
                `SlotMap.place`); placed here with `SlotMap.assign`, which admits, if None.
            slow: Rows from a stream much slower than the model's period: with a model
                whose scale is not clipped, their scale follows heavy tails and their alarm
                level follows (docs/detection.md, "Slow streams"). None: none. (With an
                observed mask the scale of a vital's value follows heavy tails too where
                the row before lacked the vital, docs/detection.md "Partial vital sets".)
            gap: Each row's interval over its stream's own (`gap_ratio`): a row at least
                `GAP_RATIO` of them after the one before has its z divided by the square
                root (the prediction spans the missing samples; at most `GAP_MAX_WIDEN`),
                and the patient's next values by a divisor settling to 1
                (`monitor.core.settle`). None: every row steady.
        """
        if placed is None:
            placed = self.patients.assign(patient_ids)
        # NaN residual: the vital is not in this sample, or its window has no value (a
        # model with an observed mask): no z, the scale keeps its state and the detector
        # sees a calm sample.
        clipped = self.scale.clip_at is not None
        if slow is not None and (clipped or not slow.any()):
            slow = None  # every row follows already, or none is slow
        heavy: BoolArray | None = slow
        observed = ~np.isnan(actual)
        if self.scale.masked and not clipped:
            # A value of a vital the patient's previous sample lacked (a cuff reading every
            # few minutes, a vital back from being lost) spans more than one of the model's
            # steps: its scale follows heavy tails too, as a slow stream's rows do.
            f = actual.shape[1]
            sparse = (windows[:, -1, f:] < 0.5) & observed
            if sparse.any():
                heavy = sparse if slow is None else sparse | slow[:, None]
        z = self.scale.z_batch(
            patient_ids, windows, actual - predictions, placed=placed, heavy=heavy
        )
        # The divisors that start a settling: a sample after the patient's silence, a
        # vital back from being lost (the larger of the two).
        after: FloatArray | None = None
        if gap is not None and np.count_nonzero(late := gap >= GAP_RATIO):
            after = np.ones((len(gap), 1))
            after[late, 0] = first_divisor(gap[late])
        lost: BoolArray | None = None
        back: FloatArray | None = None
        if self.lost is not None:
            lost, back = self.lost.find(placed, actual, t)
        first, length = starts(after, back)
        widen = self.settle.divide(placed, observed, first, length)
        if widen is not None:
            z /= widen
        absz = np.abs(z)
        if self.scale.masked and bool(np.isnan(absz).any()):
            z = np.nan_to_num(z, nan=0.0)
        z /= self.gain  # calibrated units from here on (docs/detection.md)
        if self.follow is not None and (clipped or slow is not None):
            z = self.follow.apply(patient_ids, z, placed=placed, rows=slow)
        stuck = self.stuck.find(windows, actual)
        self.stuck.distrust(placed, seq, stuck, z)
        beats = None if self.rhythm is None else self.rhythm.find(placed, actual, t)
        alerts = self.detector.update_many(
            patient_ids, z, t, seq, actual, predictions, placed=placed, beats=beats
        )
        technical = self.stuck.flatlines(self.alarms, patient_ids, t, stuck, actual)
        if self.lost is not None and lost is not None:
            technical += self.lost.events(self.alarms, patient_ids, t, actual, lost)
        return Scored(absz, alerts, technical)

    def forget(self, patient_id: str) -> None:
        """Drop a patient's scoring state (eviction): its slot leaves the patient table,
        and every component sees, by the slot's generation, that its rows are stale."""
        self.patients.release(patient_id)


def beat_rhythm(detector: Detector, period_s: float) -> BeatRhythm | None:
    """The rhythm of the detector's features whose `premature`, `asystole` or `beat_shape`
    rule is on (beat waveforms of the model card, with a setting on), or None when there is
    none."""
    rules = detector.thresholds
    on = [
        i
        for i, r in enumerate(rules)
        if r.premature is not None or r.asystole_s is not None or r.beat_shape is not None
    ]
    if not on:
        return None
    return BeatRhythm(
        on,
        [rules[i].premature for i in on],
        period_s,
        len(detector.features),
        detector.patients,
        asystole_s=next((s for i in on if (s := rules[i].asystole_s) is not None), None),
        shape=[rules[i].beat_shape for i in on],
    )
