"""The detector: residuals in sigma units -> alert state changes, per patient and vital.

Per (patient, vital): raise when |z| > threshold on k of the last n scored samples; at once
when |z| > severe or > spike; when the signed z of the last `shift_n` samples add up to more
than `shift_sum` in size (a sustained shift that each sample alone leaves below threshold);
or when the exponentially weighted mean of z squared passes `variance_level` (a change of
shape or rhythm the model follows only in part). While raised, escalate when a sample's
severity is higher than the alert's; clear after clear_m consecutive samples with
|z| < clear_below. Severity of |z|:
high if >= severe, medium if >= (threshold + severe) / 2, else low; a raise takes the
severity of the largest |z| among the last n samples. See docs/detection.md.

The raise rules are small objects over the state arrays kept here (`monitor.core.rules`);
the detector keeps those arrays and the per-vital episode state machine.
"""

from __future__ import annotations

import math
from collections.abc import Container, Sequence
from dataclasses import replace
from typing import Any, Protocol, Self

import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.alerts import AlertEvent
from monitor.core.rhythm import Beats
from monitor.core.rules import (
    RAISE_RULES,
    Evidence,
    RaiseRule,
    RuleName,
    Thresholds,
    build_rules,
)
from monitor.core.slots import IntpArray, Placement, Rows, SlotMap, grown
from monitor.core.state import StateArrays, check_array
from monitor.core.types import AlertState, AnyFloatArray, FloatArray, Severity
from monitor.core.vitals import VITALS, is_signal_name

__all__ = [
    "RAISE_RULES",
    "Detector",
    "DetectorConfig",
    "GainCurves",
    "RaiseRule",
    "RuleName",
    "Thresholds",
    "VitalOverride",
    "alarm_gains",
    "unknown_per_vital",
]

_LEVELS: tuple[Severity, ...] = ("low", "medium", "high")
_MAX_N = 16


#: The rules a vital's override can turn off with an explicit null (as the global setting
#: can); an override's other settings need a value when given.
_NULLABLE = frozenset({"spike", "shift_sum", "variance_level", "premature", "beat_shape"})


class VitalOverride(BaseModel):
    """Per-vital replacements for any of the global detector settings. A setting left out
    is the global one; `spike`, `shift_sum`, `variance_level`, `premature` or `beat_shape`
    given as null turns that rule off for the vital (``{"spo2": {"spike": null}}``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(default=None, gt=0)
    k: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=_MAX_N)
    severe: float | None = Field(default=None, gt=0)
    spike: float | None = Field(default=None, gt=0)
    clear_below: float | None = Field(default=None, ge=0)
    clear_m: int | None = Field(default=None, ge=1)
    shift_sum: float | None = Field(default=None, gt=0)
    variance_level: float | None = Field(default=None, gt=1)
    merge_samples: int | None = Field(default=None, ge=0)
    premature: float | None = Field(default=None, gt=0, lt=1)
    beat_shape: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _nulls(self) -> Self:
        given_null = sorted(
            n for n in self.model_fields_set if getattr(self, n) is None and n not in _NULLABLE
        )
        if given_null:
            raise ValueError(
                f"{', '.join(given_null)}: null turns off only "
                f"{', '.join(sorted(_NULLABLE))}; give a value or leave it out"
            )
        return self

    def given(self) -> dict[str, Any]:
        """The settings this override sets: each given one, a null (rule off) included."""
        return {n: getattr(self, n) for n in self.model_fields_set}


#: Settings that are not per-vital thresholds (not in `Thresholds`).
_GLOBAL_ONLY = {
    "per_vital",
    "merge_min_s",
    "target_false_alarms_per_day",
    "max_gain",
    "follow_level",
    "follow_share",
    "follow_step",
    "follow_max_gain",
}


class DetectorConfig(BaseModel):
    """Detector settings: global defaults plus per-vital overrides (all in sigma units).

    Attributes:
        threshold: |z| above this counts toward a raise.
        k: Exceedances needed among the last `n` scored samples.
        n: Length of the debounce window (at most 16).
        severe: A single |z| above this raises at once (and is high severity).
        spike: A single |z| above this raises at once too, with the severity of its size
            (None: off, only `severe` does). A one-sample spike differs from noise only
            in size, so nothing but a single-sample level can catch one below `severe`;
            the default is set from the false-alarm budget (docs/detection.md).
        clear_below: A raised alert clears after `clear_m` consecutive |z| below this.
        clear_m: Consecutive calm samples needed to clear.
        shift_sum: Raise when |sum of the last `shift_n` signed z| exceeds this (None: off).
            A level shift of 4 sigma gives z near 4, 3.5, 3 as the model starts to follow
            it: no two of them above 4, but a sum near 10.5.
        shift_n: Samples summed by the shift rule (global only, at most 16).
        variance_level: Raise when the exponentially weighted mean of z squared exceeds
            this (None: off). Noise alone keeps it near 1; a change of rhythm or shape that
            the model follows only in part leaves residuals of 2 to 4 sigma, sample after
            sample, none of them alone out of range.
        variance_alpha: Weight of each new z squared in that mean (global only; 0.015:
            about 67 samples of memory).
        merge_samples: After the clear condition the alert stays latched this many samples
            more; a raise condition within them continues the same episode (no new
            `raised`, no `cleared`). 0: clear at once.
        merge_min_s: The latch lasts at least this many seconds of the model's samples
            (`merge_samples` or this over the model's sample period, whichever is more):
            a fast waveform's episodes (a 250 Hz ECG's 10 samples are 40 ms) merge over
            seconds, as an operator hears them; a 1 Hz model keeps its 10 s. 0: samples
            only (global only).
        premature: On a beat waveform of a regular rhythm (a feature the model card marks,
            `rhythm`, its `ectopy` "timing"): raise on a beat at least this share earlier
            than both the median of the last 8 intervals between beats and the interval
            before it (`monitor.core.rhythm`; 0.2: 20 % early). None: off. Other vitals
            ignore it.
        asystole_s: With beat waveforms (the card's `rhythm`): raise `asystole` (high
            severity) when none of the patient's beat waveforms still received has heard
            a heartbeat for this many seconds, on the first of them, and hold it while
            the silence lasts (`monitor.core.rhythm`; 4 s: the 2015 PhysioNet/CinC
            Challenge's definition). None: off (global only).
        beat_shape: On a beat waveform of an irregular rhythm (the card's `rhythm`, its
            `ectopy` "shape": atrial fibrillation): raise `beat_shape` on a beat whose
            shape (from 60 ms before its start to 120 ms after, aligned within 30 ms, its
            amplitude within a third, offset and trend removed) differs from the median
            of the patient's last 8 normal-shaped beats by more than this share of that
            template's norm, and by more than 4 times the lower quartile of the last 16
            beats' distances (noise); `monitor.core.rhythm.BeatShape`. 0.5: a
            ventricular beat's wide complex. None: off. Other vitals ignore it.
        target_false_alarms_per_day: With a model card that carries a calibration, each
            vital's z is divided by the gain that brings the training data's raise rate to
            this many false alarms per patient-day, all vitals together (never below 1:
            never more sensitive than these levels). None: no calibration (gain 1).
            Global only; used by the pipeline, not by the detector itself.
        max_gain: The calibrated gain never exceeds this (global only).
        follow_level: Each patient's alarm level follows its own tail
            (`monitor.core.follow.AlarmFollow`, for a model whose card clips the residual
            scale: one trained on a real recording): z, in calibrated units, is divided by
            a per-patient, per-vital gain that rises while more than `follow_share` of its
            samples pass this level. None: off (global only, as the three below).
        follow_share: The share of samples above `follow_level` the follow settles at.
        follow_step: Log-gain added per sample above `follow_level` (the follow's speed).
        follow_max_gain: The follow's gain stays within [1, this].
        per_vital: Vital name -> partial override (a rule given null there is off for that
            vital: `{"spo2": {"spike": null}}`; a setting left out is the global one).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=4.0, gt=0)
    k: int = Field(default=2, ge=1)
    n: int = Field(default=3, ge=1, le=_MAX_N)
    severe: float = Field(default=8.0, gt=0)
    spike: float | None = Field(default=5.5, gt=0)
    clear_below: float = Field(default=2.0, ge=0)
    clear_m: int = Field(default=3, ge=1)
    shift_sum: float | None = Field(default=9.0, gt=0)
    shift_n: int = Field(default=3, ge=1, le=_MAX_N)
    variance_level: float | None = Field(default=1.8, gt=1)
    variance_alpha: float = Field(default=0.015, gt=0, le=1)
    merge_samples: int = Field(default=10, ge=0)
    merge_min_s: float = Field(default=2.0, ge=0)
    premature: float | None = Field(default=0.2, gt=0, lt=1)
    asystole_s: float | None = Field(default=4.0, gt=0)
    beat_shape: float | None = Field(default=0.5, gt=0)
    target_false_alarms_per_day: float | None = Field(default=1.0, gt=0)
    max_gain: float = Field(default=64.0, ge=1)
    follow_level: float | None = Field(default=3.0, gt=0)
    follow_share: float = Field(default=0.01, gt=0, lt=1)
    follow_step: float = Field(default=0.01, gt=0)
    follow_max_gain: float = Field(default=4.0, ge=1)
    per_vital: dict[str, VitalOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        # A registered signal is known only with the settings' or the model's registry:
        # here a name must be a built-in vital or have a signal name's form; the pipeline
        # checks it against the registry it serves (`unknown_per_vital`).
        unknown = sorted(n for n in self.per_vital if n not in VITALS and not is_signal_name(n))
        if unknown:
            raise ValueError(f"per_vital names unknown vital(s): {', '.join(unknown)}")
        for name in ("*", *self.per_vital):
            r = self.resolve(name)
            if r.k > r.n:
                raise ValueError(f"{name}: k ({r.k}) must not exceed n ({r.n})")
            if not r.clear_below <= r.threshold < r.severe:
                raise ValueError(f"{name}: need clear_below <= threshold < severe")
            if r.spike is not None and r.spike < r.threshold:
                raise ValueError(f"{name}: need threshold <= spike")
        return self

    def resolve(self, vital: str) -> Thresholds:
        """Return the settings of one vital (global values where it has no override)."""
        base = self.model_dump(exclude=_GLOBAL_ONLY)
        override = self.per_vital.get(vital)
        if override is not None:
            base.update(override.given())
        return Thresholds(**base)


class GainCurves(Protocol):
    """A model's alarm calibration (`monitor.model.card.Calibration`), as serving uses it."""

    def gains_for(
        self, features: Sequence[str], per_patient_day: float, max_gain: float
    ) -> list[float]:
        """Each feature's gain for a budget of `per_patient_day` raises, all together."""
        ...


def unknown_per_vital(config: DetectorConfig, known: Container[str]) -> list[str]:
    """The `per_vital` names that are neither built-in vitals nor in `known` (a registry)."""
    return sorted(n for n in config.per_vital if n not in VITALS and n not in known)


def alarm_gains(
    curves: GainCurves | None, features: Sequence[str], config: DetectorConfig
) -> FloatArray:
    """Each feature's alarm gain (z is divided by it before the detector): from the model's
    calibration for `config.target_false_alarms_per_day`, or 1 (the fixed levels) without a
    calibration or a budget."""
    target = config.target_false_alarms_per_day
    if curves is None or target is None:
        return np.ones(len(features))
    return np.asarray(curves.gains_for(features, target, config.max_gain), dtype=np.float64)


class _Plan:
    """Rules run on a round, by priority, and their names (None appended: no rule)."""

    __slots__ = ("names", "rules")

    def __init__(self, rules: list[RaiseRule]) -> None:
        self.rules = rules
        self.names: list[RuleName | None] = [rule.name for rule in rules] + [None]


class Detector:
    """Per-patient, per-vital alert state machines, scored a batch at a time.

    State lives in arrays indexed by a slot of the patient table (shared with
    `ResidualScale` in the service), so a batch is scored with a few vectorised operations;
    the raise rules (`monitor.core.rules`) give vectorised trigger masks over them, and only
    the rare rows where a vital is raised or a rule triggers run the per-vital episode
    state machine in Python. `update_many` gives exactly what calling `update` row by row
    would.

    Args:
        features: Vital names in model order (the order of `z`).
        config: Thresholds.
        model_version: Copied into every event.
        patients: The patient table (shared with the residual scale); a new one if None.
        rhythm: The features that are beat waveforms (the model card's `rhythm`): only
            they keep their `asystole_s` setting, those in `timed` their `premature`, and
            those in `shaped` their `beat_shape` (`update_many`'s `beats`).
        shaped: Beat waveforms whose ectopic beats are told by their shape (the card's
            `ectopy` "shape": an ECG lead in an irregular rhythm, where timing says
            nothing).
        timed: Beat waveforms whose ectopic beats are told by their timing (`ectopy`
            "timing"); None: every one not in `shaped`.
    """

    def __init__(
        self,
        features: Sequence[str],
        config: DetectorConfig,
        *,
        model_version: str = "unknown",
        patients: SlotMap | None = None,
        rhythm: Container[str] = (),
        shaped: Container[str] = (),
        timed: Container[str] | None = None,
        period_s: float = 0.0,
    ) -> None:
        self.features = tuple(features)
        self.config = config
        self.model_version = model_version
        held = math.ceil(config.merge_min_s / period_s) if period_s > 0 else 0
        self._vitals = [
            replace(
                r,
                premature=r.premature
                if name in rhythm and (name not in shaped if timed is None else name in timed)
                else None,
                asystole_s=r.asystole_s if name in rhythm else None,
                beat_shape=r.beat_shape if name in rhythm and name in shaped else None,
                merge_samples=max(r.merge_samples, held),
            )
            for name, r in ((name, config.resolve(name)) for name in self.features)
        ]
        v = self._vitals
        self._threshold = np.array([r.threshold for r in v])
        self._mask = np.array([(1 << r.n) - 1 for r in v], dtype=np.int64)
        self._mid = [(r.threshold + r.severe) / 2 for r in v]
        self._shift_n = config.shift_n
        self._var_alpha = config.variance_alpha
        #: The raise rules the settings turn on, by priority.
        self.rules: list[RaiseRule] = build_rules(v)
        # The rules to run on a round with a sample over threshold, and on one without.
        self._plans = (
            _Plan([rule for rule in self.rules if not rule.needs_over]),
            _Plan(self.rules),
        )
        f = len(self.features)
        self.patients = SlotMap() if patients is None else patients
        self._rows = Rows(self.patients)
        self._hist = np.zeros((0, f), dtype=np.int64)  # bit j: exceedance j samples ago
        self._ring = np.zeros((0, _MAX_N, f))  # recent signed z
        self._zsum = np.zeros((0, f))  # sum of the last shift_n z
        self._z2 = np.zeros((0, f))  # exponentially weighted mean of z squared
        self._pos = np.zeros(0, dtype=np.intp)  # next ring column
        self._n_raised = np.zeros(0, dtype=np.int64)
        self._raised = np.zeros((0, f), dtype=np.bool_)
        # Rarely touched, only by the per-vital rules: plain lists per slot.
        self._level: list[list[int]] = []
        self._calm: list[list[int]] = []
        # Samples since the clear condition while an episode is latched; -1: not latched.
        self._hold: list[list[int]] = []
        self._rule: list[list[RuleName]] = []  # what raised the episode

    def update(
        self,
        patient_id: str,
        z: AnyFloatArray,
        t: float,
        seq: int,
        actual: AnyFloatArray,
        predicted: AnyFloatArray,
    ) -> list[AlertEvent]:
        """Score one sample of one patient (`update_many` with one row).

        Args:
            patient_id: The patient.
            z: Residuals in sigma units, shape (F,), finite.
            t: Sample time.
            seq: Sample sequence number.
            actual: Measured values, shape (F,).
            predicted: Predicted values, shape (F,).

        Returns:
            The state changes this sample caused (usually none).
        """
        return self.update_many(
            [patient_id],
            np.asarray(z, dtype=np.float64)[None, :],
            [t],
            [seq],
            np.asarray(actual)[None, :],
            np.asarray(predicted)[None, :],
        )

    def update_many(
        self,
        patient_ids: Sequence[str],
        z: AnyFloatArray,
        t: Sequence[float],
        seq: Sequence[int],
        actual: AnyFloatArray,
        predicted: AnyFloatArray,
        *,
        placed: Placement | None = None,
        beats: Beats | None = None,
    ) -> list[AlertEvent]:
        """Score a batch of samples, in order: as if `update` were called row by row.

        A patient may appear in several rows (replay at full speed); its rows are scored in
        order, each seeing the state its previous row left.

        Args:
            patient_ids: Patient of each row.
            z: Residuals in sigma units, shape (B, F), finite.
            t: Sample time of each row.
            seq: Sample sequence number of each row.
            actual: Measured values, shape (B, F).
            predicted: Predicted values, shape (B, F).
            placed: The batch already placed in `patients` (the service places it once
                for the scale and the detector); placed here if None.
            beats: The rhythm's premature beats, asystole and misshapen beats at each
                row, for the `premature`, `asystole` and `beat_shape` rules
                (`monitor.core.rhythm.BeatRhythm`); None: none.

        Returns:
            The state changes, in row order (usually none).
        """
        zz = np.asarray(z, dtype=np.float64)
        early = None if beats is None else beats.premature
        silent = None if beats is None else beats.asystole
        odd = None if beats is None else beats.misshapen
        if placed is None:
            placed = self.patients.assign(patient_ids)
        slots, parts = placed.slots, placed.parts
        self._admit_new(slots)
        absz_all = np.abs(zz)
        over_all = absz_all > self._threshold
        found: list[tuple[int, list[AlertEvent]]] = []
        for rows in parts:
            idx = rows if len(parts) > 1 else slice(None)
            s = slots[idx]
            over = over_all[idx]
            zr = zz[idx]
            hist = ((self._hist[s] << 1) | over) & self._mask
            self._hist[s] = hist
            pos = self._pos[s]
            zsum = self._zsum[s] + (zr - self._ring[s, (pos - self._shift_n) % _MAX_N])
            self._zsum[s] = zsum
            self._ring[s, pos] = zr
            self._pos[s] = (pos + 1) % _MAX_N
            prev = self._z2[s]
            z2 = prev + self._var_alpha * (zr * zr - prev)
            self._z2[s] = z2
            # (np.count_nonzero: far cheaper than .any() on these small arrays.)
            plan = self._plans[1 if np.count_nonzero(over) else 0]
            evidence = Evidence(
                absz_all[idx],
                over,
                hist,
                zsum,
                z2,
                None if early is None else early[idx],
                None if silent is None else silent[idx],
                None if odd is None else odd[idx],
            )
            masks = [rule.trigger(evidence) for rule in plan.rules]
            hot = self._n_raised[s] > 0
            if masks:
                met = masks[0].copy()
                for mask in masks[1:]:
                    met |= mask
                if np.count_nonzero(met):
                    hot |= met.any(axis=1)
            if not np.count_nonzero(hot):
                continue  # the common round: nothing raised, no rule met
            picked = np.flatnonzero(hot)
            # Per vital of each hot row: the first rule (by priority) that it meets, or
            # len(masks) for none.
            fired = np.full((picked.size, len(self.features)), len(masks), dtype=np.intp)
            for code in range(len(masks) - 1, -1, -1):
                fired[masks[code][picked]] = code
            for h, code_row in zip(picked.tolist(), fired.tolist(), strict=True):
                row = int(rows[h])
                events = self._step(
                    patient_ids[row], int(s[h]), zz[row], absz_all[row], plan.names, code_row,
                    t[row], seq[row], actual[row], predicted[row],
                )  # fmt: skip
                if events:
                    found.append((row, events))
        if len(parts) > 1:
            found.sort(key=lambda item: item[0])
        return [event for _, events in found for event in events]

    @property
    def thresholds(self) -> tuple[Thresholds, ...]:
        """The resolved settings of each vital, in model order."""
        return tuple(self._vitals)

    def active(self, patient_id: str) -> list[str]:
        """Return the vitals with a raised alert for this patient, in feature order."""
        slot = self._rows.slot_of(patient_id)
        if slot is None:
            return []
        raised = self._raised[slot].tolist()
        return [name for name, up in zip(self.features, raised, strict=True) if up]

    def forget(self, patient_id: str) -> list[str]:
        """Drop a patient's state (on eviction); return the vitals that were raised. Its slot
        leaves the patient table, which drops its state in every component sharing it."""
        raised = self.active(patient_id)
        self.patients.release(patient_id)
        return raised

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every patient's alert state, rows aligned with the returned ids.

        Returns:
            ``(patient_ids, arrays)``: the per-slot arrays (``hist``, ``ring``, ``zsum``,
            ``z2``, ``pos``, ``n_raised``, ``raised``) and the per-vital rule state
            (``level``, ``calm``, ``hold``, and ``rule`` as an index into `RAISE_RULES`).
        """
        pairs = self._rows.items()
        s = np.array([slot for _, slot in pairs], dtype=np.intp)
        f = len(self.features)
        listed = [slot for _, slot in pairs]

        def table(rows: list[list[int]]) -> npt.NDArray[np.int64]:
            return np.array([rows[i] for i in listed], dtype=np.int64).reshape(len(listed), f)

        arrays: dict[str, npt.NDArray[Any]] = {
            "hist": self._hist[s],
            "ring": self._ring[s],
            "zsum": self._zsum[s],
            "z2": self._z2[s],
            "pos": self._pos[s].astype(np.int64),
            "n_raised": self._n_raised[s],
            "raised": self._raised[s],
            "level": table(self._level),
            "calm": table(self._calm),
            "hold": table(self._hold),
            "rule": table([[RAISE_RULES.index(r) for r in rules] for rules in self._rule]),
        }
        return [pid for pid, _ in pairs], arrays

    def import_state(self, patient_ids: Sequence[str], arrays: StateArrays) -> None:
        """Hold the patients of an `export_state` (none of them may be held already; a
        patient the shared table placed for another component is taken in its slot).

        Raises:
            ValueError: A patient is already held, an array has the wrong shape or a value
                is out of range; nothing is changed then.
        """
        n, f = len(patient_ids), len(self.features)
        self._grow()
        if len(set(patient_ids)) != n or any(
            self._rows.slot_of(p) is not None for p in patient_ids
        ):
            raise ValueError("import_state needs patients not held yet, each once")
        per_vital = ("hist", "zsum", "z2", "raised", "level", "calm", "hold", "rule")
        got = {name: check_array(arrays, name, (n, f)) for name in per_vital}
        got["ring"] = check_array(arrays, "ring", (n, _MAX_N, f))
        got["pos"] = check_array(arrays, "pos", (n,))
        got["n_raised"] = check_array(arrays, "n_raised", (n,))
        raised = got["raised"].astype(bool)
        if n and (
            not np.all((got["pos"] >= 0) & (got["pos"] < _MAX_N))
            or not np.all((got["rule"] >= 0) & (got["rule"] < len(RAISE_RULES)))
            or not np.all((got["level"] >= 0) & (got["level"] < len(_LEVELS)))
            or not np.array_equal(got["n_raised"], raised.sum(axis=1))
        ):
            raise ValueError("detector state out of range")
        slots = self.patients.assign(patient_ids).slots
        self._grow()
        self._admit(slots)
        self._hist[slots] = got["hist"]
        self._ring[slots] = got["ring"]
        self._zsum[slots] = got["zsum"]
        self._z2[slots] = got["z2"]
        self._pos[slots] = got["pos"]
        self._n_raised[slots] = got["n_raised"]
        self._raised[slots] = raised
        level, calm = got["level"].tolist(), got["calm"].tolist()
        hold, rule = got["hold"].tolist(), got["rule"].tolist()
        for row, slot in enumerate(slots.tolist()):
            self._level[slot] = [int(v) for v in level[row]]
            self._calm[slot] = [int(v) for v in calm[row]]
            self._hold[slot] = [int(v) for v in hold[row]]
            self._rule[slot] = [RAISE_RULES[int(v)] for v in rule[row]]

    def __len__(self) -> int:
        return len(self._rows)

    def _admit_new(self, slots: IntpArray) -> None:
        """Reset the slots of a placed batch that are new to this detector."""
        self._grow()
        stale = self._rows.stale(slots)
        if stale is not None:
            self._admit(np.unique(slots[stale]))

    def _grow(self) -> None:
        """Grow the state arrays to the patient table's capacity."""
        cap = self._rows.grow()
        if cap is not None:
            self._hist = grown(self._hist, cap)
            self._ring = grown(self._ring, cap)
            self._zsum = grown(self._zsum, cap)
            self._z2 = grown(self._z2, cap)
            self._pos = grown(self._pos, cap)
            self._n_raised = grown(self._n_raised, cap)
            self._raised = grown(self._raised, cap)
            more = cap - len(self._level)
            f = len(self.features)
            self._level += [[0] * f for _ in range(more)]
            self._calm += [[0] * f for _ in range(more)]
            self._hold += [[-1] * f for _ in range(more)]
            self._rule += [["k_of_n"] * f for _ in range(more)]

    def _admit(self, slots: IntpArray) -> None:
        """Reset the given slots (grown already) and mark them as held."""
        self._rows.hold(slots)
        self._hist[slots] = 0
        self._ring[slots] = 0.0
        self._zsum[slots] = 0.0
        self._z2[slots] = 1.0
        self._pos[slots] = 0
        self._n_raised[slots] = 0
        self._raised[slots] = False
        f = len(self.features)
        for slot in slots.tolist():
            self._level[slot] = [0] * f
            self._calm[slot] = [0] * f
            self._hold[slot] = [-1] * f
            self._rule[slot] = ["k_of_n"] * f

    def _step(
        self,
        patient_id: str,
        slot: int,
        z: FloatArray,
        absz: FloatArray,
        names: Sequence[RuleName | None],
        fired: list[int],
        t: float,
        seq: int,
        actual: AnyFloatArray,
        predicted: AnyFloatArray,
    ) -> list[AlertEvent]:
        """Run the per-vital episode state machine of one row whose state was just updated.

        `fired`: per vital, the index in `names` of the first rule it meets (None last).
        """
        events: list[AlertEvent] = []
        raised = self._raised[slot]
        for i, r in enumerate(self._vitals):
            rule = names[fired[i]]
            if raised[i]:
                state = self._step_raised(slot, i, r, float(absz[i]), rule)
            elif rule is not None:
                state = self._raise(slot, i, r, rule)
            else:
                continue
            if state is not None:
                events.append(self._event(patient_id, slot, i, state, t, seq, z, actual, predicted))
        return events

    def _level_of(self, i: int, r: Thresholds, a: float) -> int:
        return 2 if a >= r.severe else 1 if a >= self._mid[i] else 0

    def _recent_level(self, slot: int, i: int, r: Thresholds) -> int:
        """Severity of the largest |z| among the last n samples."""
        last = [(int(self._pos[slot]) - 1 - j) % _MAX_N for j in range(r.n)]
        return self._level_of(i, r, float(np.abs(self._ring[slot, last, i]).max()))

    def _raise(self, slot: int, i: int, r: Thresholds, rule: RuleName) -> AlertState:
        self._rule[slot][i] = rule
        self._raised[slot, i] = True
        self._n_raised[slot] += 1
        # No heartbeat is an emergency whatever the residuals say (a flat line is easy
        # to predict): high severity.
        self._level[slot][i] = 2 if rule == "asystole" else self._recent_level(slot, i, r)
        self._calm[slot][i] = 0
        self._hold[slot][i] = -1
        return "raised"

    def _step_raised(
        self, slot: int, i: int, r: Thresholds, a: float, rule: RuleName | None
    ) -> AlertState | None:
        hold = self._hold[slot]
        if hold[i] >= 0:
            # Latched after the clear condition: a new raise condition continues the episode.
            if rule is not None:
                hold[i] = -1
                self._calm[slot][i] = 0
                level = 2 if rule == "asystole" else self._recent_level(slot, i, r)
                return self._escalate(slot, i, level, rule)
            hold[i] += 1
            if hold[i] < r.merge_samples:
                return None
            return self._clear(slot, i)
        calm = self._calm[slot]
        if rule == "asystole":  # no heartbeat: the episode stays open, at high severity
            calm[i] = 0
            return self._escalate(slot, i, 2, rule)
        if a < r.clear_below:
            calm[i] += 1
            if calm[i] < r.clear_m:
                return None
            # A fresh episode (or a continued one, while latched) needs fresh evidence.
            self._hist[slot, i] = 0
            self._ring[slot, :, i] = 0.0
            self._zsum[slot, i] = 0.0
            self._z2[slot, i] = 1.0
            if r.merge_samples > 0:
                hold[i] = 0
                return None
            return self._clear(slot, i)
        calm[i] = 0
        return self._escalate(slot, i, self._level_of(i, r, a), rule)

    def _escalate(self, slot: int, i: int, level: int, rule: RuleName | None) -> AlertState | None:
        """Escalate an open episode to `level` if that is higher; an asystole names it."""
        if level <= self._level[slot][i]:
            return None
        self._level[slot][i] = level
        if rule == "asystole":
            self._rule[slot][i] = rule
        return "escalated"

    def _clear(self, slot: int, i: int) -> AlertState:
        self._raised[slot, i] = False
        self._n_raised[slot] -= 1
        self._hold[slot][i] = -1
        return "cleared"

    def _event(
        self,
        patient_id: str,
        slot: int,
        i: int,
        state: AlertState,
        t: float,
        seq: int,
        z: AnyFloatArray,
        actual: AnyFloatArray,
        predicted: AnyFloatArray,
    ) -> AlertEvent:
        return AlertEvent(
            kind="physiological",
            patient_id=patient_id,
            vital=self.features[i],
            state=state,
            severity=_LEVELS[self._level[slot][i]],
            t=float(t),
            seq=int(seq),
            actual=float(actual[i]),
            predicted=float(predicted[i]),
            z=float(z[i]),
            threshold=self._vitals[i].threshold,
            model_version=self.model_version,
            reason=self._rule[slot][i],
        )
