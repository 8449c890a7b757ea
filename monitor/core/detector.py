"""The detector: residuals in sigma units -> alert state changes, per patient and vital.

Per (patient, vital): raise when |z| > threshold on k of the last n scored samples, at once
when |z| > severe, or when the signed z of the last `shift_n` samples add up to more than
`shift_sum` in size (a sustained shift that each sample alone leaves below threshold); while
raised, escalate when a sample's severity is higher than the
alert's; clear after clear_m consecutive samples with |z| < clear_below. Severity of |z|:
high if >= severe, medium if >= (threshold + severe) / 2, else low; a raise takes the
severity of the largest |z| among the last n samples. See docs/detection.md.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.alerts import AlertEvent
from monitor.core.types import AlertState, AnyFloatArray, Severity
from monitor.core.vitals import VITALS

_LEVELS: tuple[Severity, ...] = ("low", "medium", "high")

#: Which rule raised a physiological alert (the `reason` of its events).
RaiseRule = Literal["k_of_n", "severe", "shift"]
_MAX_N = 16


class VitalOverride(BaseModel):
    """Per-vital replacements for any of the global detector settings."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float | None = Field(default=None, gt=0)
    k: int | None = Field(default=None, ge=1)
    n: int | None = Field(default=None, ge=1, le=_MAX_N)
    severe: float | None = Field(default=None, gt=0)
    clear_below: float | None = Field(default=None, ge=0)
    clear_m: int | None = Field(default=None, ge=1)
    shift_sum: float | None = Field(default=None, gt=0)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The resolved settings of one vital."""

    threshold: float
    k: int
    n: int
    severe: float
    clear_below: float
    clear_m: int
    shift_sum: float | None
    shift_n: int


class DetectorConfig(BaseModel):
    """Detector settings: global defaults plus per-vital overrides (all in sigma units).

    Attributes:
        threshold: |z| above this counts toward a raise.
        k: Exceedances needed among the last `n` scored samples.
        n: Length of the debounce window (at most 16).
        severe: A single |z| above this raises at once (and is high severity).
        clear_below: A raised alert clears after `clear_m` consecutive |z| below this.
        clear_m: Consecutive calm samples needed to clear.
        shift_sum: Raise when |sum of the last `shift_n` signed z| exceeds this (None: off).
            A level shift of 4 sigma gives z near 4, 3.5, 3 as the model starts to follow
            it: no two of them above 4, but a sum near 10.5.
        shift_n: Samples summed by the shift rule (global only, at most 16).
        per_vital: Vital name -> partial override.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    threshold: float = Field(default=4.0, gt=0)
    k: int = Field(default=2, ge=1)
    n: int = Field(default=3, ge=1, le=_MAX_N)
    severe: float = Field(default=8.0, gt=0)
    clear_below: float = Field(default=2.0, ge=0)
    clear_m: int = Field(default=3, ge=1)
    shift_sum: float | None = Field(default=9.0, gt=0)
    shift_n: int = Field(default=3, ge=1, le=_MAX_N)
    per_vital: dict[str, VitalOverride] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        unknown = sorted(set(self.per_vital) - set(VITALS))
        if unknown:
            raise ValueError(f"per_vital names unknown vital(s): {', '.join(unknown)}")
        for name in ("*", *self.per_vital):
            r = self.resolve(name)
            if r.k > r.n:
                raise ValueError(f"{name}: k ({r.k}) must not exceed n ({r.n})")
            if not r.clear_below <= r.threshold < r.severe:
                raise ValueError(f"{name}: need clear_below <= threshold < severe")
        return self

    def resolve(self, vital: str) -> Thresholds:
        """Return the settings of one vital (global values where it has no override)."""
        base = self.model_dump(exclude={"per_vital"})
        override = self.per_vital.get(vital)
        if override is not None:
            base.update(override.model_dump(exclude_none=True))
        return Thresholds(**base)


class _PatientState:
    __slots__ = ("calm", "hist", "level", "n_raised", "pos", "raised", "ring", "rule", "zsum")

    def __init__(self, n_features: int) -> None:
        self.hist = np.zeros(n_features, dtype=np.int64)  # bit j: exceedance j samples ago
        self.ring = np.zeros((n_features, _MAX_N), dtype=np.float64)  # recent signed z
        self.zsum = np.zeros(n_features, dtype=np.float64)  # sum of the last shift_n z
        self.pos = 0
        self.raised = [False] * n_features
        self.level = [0] * n_features
        self.calm = [0] * n_features
        self.rule: list[RaiseRule] = ["k_of_n"] * n_features  # what raised the episode
        self.n_raised = 0


class Detector:
    """Per-patient, per-vital alert state machines.

    Args:
        features: Vital names in model order (the order of `z`).
        config: Thresholds.
        model_version: Copied into every event.
    """

    def __init__(
        self, features: Sequence[str], config: DetectorConfig, *, model_version: str = "unknown"
    ) -> None:
        self.features = tuple(features)
        self.config = config
        self.model_version = model_version
        self._vitals = [config.resolve(name) for name in self.features]
        v = self._vitals
        self._threshold = np.array([r.threshold for r in v])
        self._mask = np.array([(1 << r.n) - 1 for r in v], dtype=np.int64)
        self._mid = [(r.threshold + r.severe) / 2 for r in v]
        self._shift_n = config.shift_n
        self._shift = np.array([np.inf if r.shift_sum is None else r.shift_sum for r in v])
        self._states: dict[str, _PatientState] = {}

    def update(
        self,
        patient_id: str,
        z: AnyFloatArray,
        t: float,
        seq: int,
        actual: AnyFloatArray,
        predicted: AnyFloatArray,
    ) -> list[AlertEvent]:
        """Score one sample of one patient.

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
        st = self._states.get(patient_id)
        if st is None:
            st = self._states[patient_id] = _PatientState(len(self.features))
        absz = np.abs(z)
        over = absz > self._threshold
        st.hist = ((st.hist << 1) | over) & self._mask
        st.zsum += z - st.ring[:, (st.pos - self._shift_n) % _MAX_N]
        st.ring[:, st.pos] = z
        st.pos = (st.pos + 1) % _MAX_N
        shifted = np.abs(st.zsum) > self._shift
        if not st.n_raised and not over.any() and not shifted.any():
            return []
        events: list[AlertEvent] = []
        for i, r in enumerate(self._vitals):
            a = float(absz[i])
            if st.raised[i]:
                state = self._step_raised(st, i, r, a)
            elif over[i] and a > r.severe:
                state = self._raise(st, i, r, "severe")
            elif over[i] and int(st.hist[i]).bit_count() >= r.k:
                state = self._raise(st, i, r, "k_of_n")
            elif shifted[i]:
                state = self._raise(st, i, r, "shift")
            else:
                continue
            if state is not None:
                events.append(self._event(patient_id, i, state, st, t, seq, z, actual, predicted))
        return events

    def active(self, patient_id: str) -> list[str]:
        """Return the vitals with a raised alert for this patient, in feature order."""
        st = self._states.get(patient_id)
        if st is None:
            return []
        return [name for name, up in zip(self.features, st.raised, strict=True) if up]

    def forget(self, patient_id: str) -> list[str]:
        """Drop a patient's state (on eviction); return the vitals that were raised."""
        raised = self.active(patient_id)
        self._states.pop(patient_id, None)
        return raised

    def __len__(self) -> int:
        return len(self._states)

    def _level(self, i: int, r: Thresholds, a: float) -> int:
        return 2 if a >= r.severe else 1 if a >= self._mid[i] else 0

    def _raise(self, st: _PatientState, i: int, r: Thresholds, rule: RaiseRule) -> AlertState:
        last = [(st.pos - 1 - j) % _MAX_N for j in range(r.n)]
        st.rule[i] = rule
        st.raised[i] = True
        st.n_raised += 1
        st.level[i] = self._level(i, r, float(np.abs(st.ring[i, last]).max()))
        st.calm[i] = 0
        return "raised"

    def _step_raised(self, st: _PatientState, i: int, r: Thresholds, a: float) -> AlertState | None:
        if a < r.clear_below:
            st.calm[i] += 1
            if st.calm[i] < r.clear_m:
                return None
            st.raised[i] = False
            st.n_raised -= 1
            # A fresh episode needs fresh evidence: k new exceedances or a new sum.
            st.hist[i] = 0
            st.ring[i] = 0.0
            st.zsum[i] = 0.0
            return "cleared"
        st.calm[i] = 0
        level = self._level(i, r, a)
        if level <= st.level[i]:
            return None
        st.level[i] = level
        return "escalated"

    def _event(
        self,
        patient_id: str,
        i: int,
        state: AlertState,
        st: _PatientState,
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
            severity=_LEVELS[st.level[i]],
            t=t,
            seq=seq,
            actual=float(actual[i]),
            predicted=float(predicted[i]),
            z=float(z[i]),
            threshold=self._vitals[i].threshold,
            model_version=self.model_version,
            reason=st.rule[i],
        )
