"""Data sources that generate their own signal: simulated patients and the seed's sine."""

from __future__ import annotations

import numpy as np

from monitor.core.vitals import CLINICAL_VITALS
from monitor.training.data import Segment, SplitData
from simulators.signals import PatientProfile, draw_patients, generate, seed_profile


def _patient_segment(profile: PatientProfile, index: int, seconds: int, seed: int) -> Segment:
    t = np.arange(seconds, dtype=np.float64)  # 1 Hz, as the live simulator publishes
    # The noise stream depends on (seed, patient index) only, so adding patients never
    # changes the data of the others.
    clean, noisy = generate(profile, t, np.random.default_rng([seed, index, 1]))
    return Segment(values=noisy, clean=clean)


def simulated_patients(n_train: int, n_val: int, n_test: int, seconds: int, seed: int) -> SplitData:
    """Simulated patients with all six clinical vitals at 1 Hz, split by patient.

    Patients ``0..n_train-1`` train, the next `n_val` validate, the next `n_test` test;
    no patient is in two splits.

    Args:
        n_train: Training patients.
        n_val: Validation patients (residual sigma).
        n_test: Test patients (metrics).
        seconds: Samples per patient.
        seed: Seed of the patients' parameters and noise.
    """
    total = n_train + n_val + n_test
    profiles = draw_patients(total, seed)
    segments = [_patient_segment(p, i, seconds, seed) for i, p in enumerate(profiles)]
    return SplitData(
        features=CLINICAL_VITALS,
        sample_period_s=1.0,
        train=segments[:n_train],
        val=segments[n_train : n_train + n_val],
        test=segments[n_train + n_val :],
        description=(
            f"simulators.signals: {n_train} train / {n_val} val / {n_test} test patients, "
            f"{seconds} s each at 1 Hz, seed {seed}"
        ),
    )


def seed_sine(seed: int, train_ratio: float = 0.8) -> SplitData:
    """The seed tutorial's data: ``sin(t) + 0.2*N(0,1)``, ``t = 0, 0.1, ..., 99.9``.

    Split chronologically at ``int(1000 * train_ratio)`` as the seed does; there is no
    validation split (the seed has none), so `val` is empty.
    """
    t = np.arange(0, 100, 0.1)
    clean, noisy = generate(seed_profile(), t, np.random.default_rng(seed))
    cut = int(len(t) * train_ratio)
    return SplitData(
        features=("seed_signal",),
        sample_period_s=0.1,
        train=[Segment(noisy[:cut], clean[:cut])],
        val=[],
        test=[Segment(noisy[cut:], clean[cut:])],
        description=f"seed tutorial sine: sin(t) + 0.2*N(0,1), t = 0..99.9 step 0.1, seed {seed}",
    )
