"""Pure, seeded signal generators for simulated patients.

Each vital is ``baseline + amplitude * sin(2*pi*t/period + phase) + N(0, sigma)``, with
per-patient parameters drawn from plausible clinical ranges. The live simulator and the
offline trainer both use this module, so the model is trained on what it will see.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from monitor.core.vitals import CLINICAL_VITALS, Vital

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class VitalParams:
    """Parameters of one simulated vital.

    Attributes:
        baseline: Mean level, in the vital's unit.
        amplitude: Amplitude of the slow oscillation.
        period_s: Period of the oscillation, seconds.
        phase: Phase at t = 0, radians.
        sigma: Standard deviation of the Gaussian measurement noise.
        ceiling: Values are clipped to at most this (SpO2 never exceeds 100).
    """

    baseline: float
    amplitude: float
    period_s: float
    phase: float
    sigma: float
    ceiling: float = math.inf


@dataclass(frozen=True, slots=True)
class PatientProfile:
    """A simulated patient: an id and the parameters of each vital, in feature order."""

    patient_id: str
    vitals: dict[str, VitalParams]

    @property
    def names(self) -> tuple[str, ...]:
        """Vital names in feature order."""
        return tuple(self.vitals)


# (baseline range, amplitude range, period range in seconds, sigma range, ceiling)
_RANGES: dict[
    str,
    tuple[
        tuple[float, float], tuple[float, float], tuple[float, float], tuple[float, float], float
    ],
] = {
    "heart_rate": ((60.0, 95.0), (3.0, 8.0), (120.0, 600.0), (1.0, 2.5), math.inf),
    "spo2": ((95.0, 97.5), (0.5, 1.5), (180.0, 900.0), (0.3, 0.6), 100.0),
    "resp_rate": ((12.0, 18.0), (1.0, 3.0), (120.0, 600.0), (0.5, 1.0), math.inf),
    "bp_sys": ((105.0, 135.0), (4.0, 10.0), (240.0, 900.0), (1.5, 3.0), math.inf),
    "bp_dia": ((65.0, 85.0), (3.0, 7.0), (240.0, 900.0), (1.0, 2.0), math.inf),
    "temperature": ((36.4, 37.4), (0.1, 0.3), (600.0, 1800.0), (0.03, 0.06), math.inf),
}


def draw_patient(patient_id: str, rng: np.random.Generator) -> PatientProfile:
    """Draw one patient's parameters for the six clinical vitals.

    Args:
        patient_id: The patient's id.
        rng: The generator to draw from; the caller seeds it.

    Returns:
        A profile whose vitals are in `CLINICAL_VITALS` order.
    """
    vitals: dict[str, VitalParams] = {}
    for name in CLINICAL_VITALS:
        (b_lo, b_hi), (a_lo, a_hi), (p_lo, p_hi), (s_lo, s_hi), ceiling = _RANGES[name]
        vitals[name] = VitalParams(
            baseline=float(rng.uniform(b_lo, b_hi)),
            amplitude=float(rng.uniform(a_lo, a_hi)),
            period_s=float(rng.uniform(p_lo, p_hi)),
            phase=float(rng.uniform(0.0, 2.0 * math.pi)),
            sigma=float(rng.uniform(s_lo, s_hi)),
            ceiling=ceiling,
        )
    return PatientProfile(patient_id=patient_id, vitals=vitals)


def patient_id_for(index: int, prefix: str = "p") -> str:
    """Return the id of the index-th simulated patient (``p0000``, ``p0001``, ...)."""
    return f"{prefix}{index:04d}"


def draw_patients(n: int, seed: int, prefix: str = "p", first: int = 0) -> list[PatientProfile]:
    """Draw `n` patients deterministically from `seed`.

    Patient ``first + i`` always gets the same parameters for the same seed, whatever `n`
    is, so a test set of patients ``first..first+n`` never overlaps a training set drawn
    with ``first=0`` and a smaller count.
    """
    return [
        draw_patient(patient_id_for(i, prefix), np.random.default_rng([seed, i, 0x5EED]))
        for i in range(first, first + n)
    ]


def seed_profile(patient_id: str = "seed") -> PatientProfile:
    """The seed tutorial's signal, ``sin(t) + 0.2*N(0,1)``, as a one-vital profile.

    Sampled at 10 Hz from t = 0, it gives exactly the tutorial's ``t = 0, 0.1, ..., 99.9``.
    """
    return PatientProfile(
        patient_id=patient_id,
        vitals={
            "seed_signal": VitalParams(
                baseline=0.0, amplitude=1.0, period_s=2.0 * math.pi, phase=0.0, sigma=0.2
            )
        },
    )


def with_signals(
    profile: PatientProfile, signals: tuple[Vital, ...], rng: np.random.Generator
) -> PatientProfile:
    """Add registered signals to a profile: each a sine with noise inside its bounds.

    A generic shape, not a physiological model (an ECG is not a sine): the level is the
    middle of the signal's bounds, the swing an eighth of their span, the period 30 to 120 s,
    the noise 1 % of the span.

    Args:
        profile: A drawn patient.
        signals: Registered signals to add, in order after the profile's vitals.
        rng: The generator to draw from; the caller seeds it.
    """
    vitals = dict(profile.vitals)
    for signal in signals:
        span = signal.high - signal.low
        vitals[signal.name] = VitalParams(
            baseline=signal.low + span / 2.0,
            amplitude=float(rng.uniform(0.08, 0.125)) * span,
            period_s=float(rng.uniform(30.0, 120.0)),
            phase=float(rng.uniform(0.0, 2.0 * math.pi)),
            sigma=0.01 * span,
            ceiling=signal.high,
        )
    return PatientProfile(profile.patient_id, vitals)


def clean_signal(profile: PatientProfile, t: FloatArray) -> FloatArray:
    """Return the noiseless signal, shape ``(len(t), n_vitals)``, at times `t` (seconds)."""
    out = np.empty((t.shape[0], len(profile.vitals)), dtype=np.float64)
    for j, p in enumerate(profile.vitals.values()):
        out[:, j] = p.baseline + p.amplitude * np.sin(2.0 * np.pi * t / p.period_s + p.phase)
    return out


def noise_sigmas(profile: PatientProfile) -> FloatArray:
    """Return the per-vital noise sigma, shape ``(n_vitals,)``."""
    return np.array([p.sigma for p in profile.vitals.values()], dtype=np.float64)


def ceilings(profile: PatientProfile) -> FloatArray:
    """Return the per-vital upper clip, shape ``(n_vitals,)`` (inf where none)."""
    return np.array([p.ceiling for p in profile.vitals.values()], dtype=np.float64)


def generate(
    profile: PatientProfile, t: FloatArray, rng: np.random.Generator
) -> tuple[FloatArray, FloatArray]:
    """Return ``(clean, noisy)`` samples at times `t`, each ``(len(t), n_vitals)``.

    The noise is drawn as one ``standard_normal((len(t), n_vitals))`` call, so drawing
    consecutive chunks from the same generator gives the same values as one long call.
    """
    clean = clean_signal(profile, t)
    noisy = clean + rng.standard_normal(clean.shape) * noise_sigmas(profile)
    return clean, np.minimum(noisy, ceilings(profile))
