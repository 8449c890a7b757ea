"""Generated vitals match their parameters (through the scenario's stable output)."""

from __future__ import annotations

import dataclasses

import numpy as np

from simulators.scenarios import build
from simulators.signals import clean_signal, draw_patients, seed_profile


def test_noise_sigma_and_baseline_match_parameters() -> None:
    """Residual around the clean signal has the drawn sigma; the mean is the baseline."""
    profiles = draw_patients(3, seed=7)
    sim = build("stable", profiles, seed=7, rate=1.0)
    n = 20_000
    t = np.arange(n) / 1.0
    for i, profile in enumerate(profiles):
        values = sim.stable(i, 0, n)
        resid = values - clean_signal(profile, t)
        for j, (name, p) in enumerate(profile.vitals.items()):
            if name == "spo2":
                continue  # clipped at 100, checked below
            assert abs(resid[:, j].std() / p.sigma - 1) < 0.03, name
            assert abs(resid[:, j].mean()) < 4 * p.sigma / np.sqrt(n), name
            # Whole periods average to the baseline.
            whole = int(n // p.period_s * p.period_s)
            assert abs(values[:whole, j].mean() - p.baseline) < 0.05 * p.amplitude, name


def test_period_is_the_spectral_peak() -> None:
    """The heart-rate spectrum peaks at 1/period (within one frequency bin)."""
    profile = draw_patients(1, seed=3)[0]
    sim = build("stable", [profile], seed=3, rate=1.0)
    n = 2**15
    x = sim.stable(0, 0, n)[:, 0]
    spectrum = np.abs(np.fft.rfft(x - x.mean()))
    freqs = np.fft.rfftfreq(n, d=1.0)
    peak = freqs[int(np.argmax(spectrum))]
    assert abs(peak - 1.0 / profile.vitals["heart_rate"].period_s) <= 1.0 / n


def test_spo2_never_above_100() -> None:
    """SpO2 stays at or below 100 % for every patient, also in the anomalous scenario."""
    sim = build("mixed", draw_patients(40, seed=1), seed=1, rate=1.0)
    for i in range(40):
        _, values, _ = sim.samples(i, 0, 3000)
        assert values[:, 1].max() <= 100.0
    # A patient near the ceiling is clipped at exactly 100, not above.
    base = draw_patients(1, seed=1)[0]
    high = dataclasses.replace(base.vitals["spo2"], baseline=99.8)
    near = dataclasses.replace(base, vitals={**base.vitals, "spo2": high})
    clipped = build("stable", [near], seed=1, rate=1.0).stable(0, 0, 3000)[:, 1]
    assert clipped.max() == 100.0
    assert (clipped == 100.0).sum() > 300


def test_seed_profile_is_the_tutorial_signal() -> None:
    """The seed profile at 10 Hz is sin(t) + 0.2 N(0,1) at t = 0, 0.1, ..."""
    sim = build("stable", [seed_profile("p0000")], seed=0, rate=10.0, start_time=0.0)
    t, values, present = sim.samples(0, 0, 10_000)
    assert t[:3].tolist() == [0.0, 0.1, 0.2]
    noise = values[:, 0] - np.sin(t)
    assert present.all()
    assert abs(noise.std() - 0.2) < 0.006
    assert abs(noise.mean()) < 0.006
