"""Scenarios: anomalies exactly where the labels say, the documented timing, determinism."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from simulators.labels import KINDS, AnomalyLabel
from simulators.scenarios import Scenario, Timing, build
from simulators.signals import draw_patients, seed_profile

N = 6000
SHORT = Timing(warmup_s=120.0, gap_s=(60.0, 120.0))


def _run(name: str, patients: int = 8, seed: int = 11) -> tuple[Scenario, list[list[AnomalyLabel]]]:
    sim = build(name, draw_patients(patients, seed), seed, rate=1.0, start_time=1.7e9, timing=SHORT)
    return sim, [sim.labels(i, 0, N) for i in range(patients)]


def test_mixed_anomalies_exactly_where_labelled() -> None:
    """Scenario output differs from the stable output of the same seed only inside labels."""
    sim, labels = _run("mixed")
    names = sim.names
    for i, patient_labels in enumerate(labels):
        _, values, present = sim.samples(i, 0, N)
        stable = sim.stable(i, 0, N)
        changed = values != stable
        expected = np.zeros_like(changed)
        dropped = np.zeros(N, dtype=bool)
        for lab in patient_labels:
            rows = slice(lab.start_seq, min(lab.end_seq, N - 1) + 1)
            if lab.kind == "dropout":
                dropped[rows] = True
                continue
            j = names.index(lab.vital or "")
            expected[rows, j] = True
            seg, base = values[rows, j], stable[rows, j]
            if lab.kind == "flatline":
                assert np.all(seg == stable[lab.start_seq - 1, j])
            elif lab.vital != "spo2":  # SpO2 may sit on its 100 % clip
                assert np.all(seg != base), lab
            if lab.kind == "spike":
                sigma = list(sim.profiles[i].vitals.values())[j].sigma
                assert abs(abs(seg[0] - base[0]) - lab.magnitude_sigma * sigma) < 1e-9
        assert not np.any(changed & ~expected), f"patient {i}: change outside labels"
        assert np.array_equal(~present, dropped)


def test_mixed_timing_kinds_and_magnitudes() -> None:
    """Every kind occurs; none before the warm-up; gaps and magnitudes stay in range."""
    _, labels = _run("mixed", patients=20)
    flat = [lab for pl in labels for lab in pl]
    assert {lab.kind for lab in flat} == set(KINDS)
    assert min(lab.start_seq for lab in flat) >= 120 + 60
    for pl in labels:
        for prev, nxt in itertools.pairwise(pl):
            assert 60 <= nxt.start_seq - prev.end_seq - 1 <= 120
    for lab in flat:
        if lab.kind in ("flatline", "dropout"):
            assert lab.magnitude_sigma == 0.0
        else:
            assert 3.0 <= lab.magnitude_sigma <= 12.0
        assert (lab.vital is None) == (lab.kind == "dropout")
        assert lab.start_t == 1.7e9 + lab.start_seq
        assert lab.end_t == 1.7e9 + lab.end_seq
        assert (lab.end_seq == lab.start_seq) == (lab.kind == "spike")


@pytest.mark.parametrize(
    ("name", "vital", "kinds", "direction"),
    [
        ("tachycardia", "heart_rate", {"level_shift", "drift"}, 1.0),
        ("desaturation", "spo2", {"level_shift", "drift"}, -1.0),
        ("sensor-dropout", None, {"dropout"}, 0.0),
    ],
)
def test_named_scenarios(name: str, vital: str | None, kinds: set[str], direction: float) -> None:
    """A named scenario injects only its kinds, on its vital, in its direction, on some patients."""
    sim, labels = _run(name, patients=20)
    flat = [lab for pl in labels for lab in pl]
    assert {lab.kind for lab in flat} == kinds
    assert {lab.vital for lab in flat} == {vital}
    affected = sum(1 for pl in labels if pl)
    assert 0 < affected < 20
    if direction:
        j = sim.names.index(vital or "")
        for i in range(20):
            diff = sim.samples(i, 0, N)[1][:, j] - sim.stable(i, 0, N)[:, j]
            assert np.all(diff * direction >= 0)
            assert bool(labels[i]) == bool(np.any(diff != 0))


def test_stable_has_no_events() -> None:
    """The stable scenario labels nothing and publishes every sample unchanged."""
    sim, labels = _run("stable")
    assert labels == [[] for _ in range(8)]
    _, values, present = sim.samples(3, 0, 500)
    assert present.all()
    assert np.array_equal(values, sim.stable(3, 0, 500))


def test_same_seed_same_output_however_cut() -> None:
    """Samples and labels do not depend on chunking, patient count or query order."""
    sim_a, labels_a = _run("mixed", patients=10)
    sim_b = build("mixed", draw_patients(4, 11), 11, rate=1.0, start_time=1.7e9, timing=SHORT)
    whole = sim_a.samples(3, 0, 3000)
    cuts = [0, 1, 63, 64, 65, 700, 1999, 3000]
    parts = [sim_b.samples(3, a, b) for a, b in itertools.pairwise(cuts)]
    for k in range(3):
        assert np.array_equal(whole[k], np.concatenate([p[k] for p in parts]))
    assert sim_b.labels(3, 0, N) == labels_a[3]
    other_seed = build("mixed", draw_patients(4, 11), 12, rate=1.0, start_time=1.7e9, timing=SHORT)
    assert not np.array_equal(other_seed.samples(3, 0, 100)[1], whole[1][:100])


def test_bad_names() -> None:
    """An unknown scenario, or one whose vital the profile lacks, fails with a clear error."""
    with pytest.raises(KeyError, match="unknown scenario"):
        build("nope", draw_patients(1, 0), 0, 1.0)
    with pytest.raises(ValueError, match=r"needs one of \('heart_rate',\)"):
        build("tachycardia", [seed_profile("p0000")], 0, 1.0)
    assert build("mixed", [seed_profile("p0000")], 0, 1.0).names == ("seed_signal",)
