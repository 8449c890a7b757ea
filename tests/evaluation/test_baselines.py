"""The baselines: rolling z-score and persistence residual, their 2-of-3 onset rule, and the
samples they read from a recording (the codec's accepted samples, in order)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.evaluation.baselines import (
    BaselineRule,
    PatientSamples,
    baseline_alerts,
    persistence_onsets,
    read_samples,
    rolling_z,
    rule_onsets,
    scored_hours,
    zscore_onsets,
)
from monitor.replay.recording import Record, RecordingWriter

T0 = 1_700_000_000.0


def _naive_z(x: np.ndarray, window: int) -> np.ndarray:
    z = np.full(len(x), np.nan)
    for i in range(window, len(x)):
        past = x[i - window : i]
        mean, std = past.mean(), past.std()
        dev = x[i] - mean
        z[i] = dev / std if std > 0 else (0.0 if dev == 0 else np.sign(dev) * np.inf)
    return z


def test_rolling_z_equals_a_loop_over_past_windows() -> None:
    """Heart-rate-like values, a constant stretch (z 0 or inf) and a window of 7."""
    rng = np.random.default_rng(3)
    x = 72.0 + rng.normal(0.0, 2.0, 300)
    x[100:120] = 70.0  # constant: the sample after 7 equal ones has std 0
    x[120] = 75.0
    got, want = rolling_z(x, 7), _naive_z(x, 7)
    assert np.isnan(got[:7]).all()
    np.testing.assert_allclose(got[7:], want[7:], rtol=1e-9)
    assert got[110] == 0.0
    assert got[120] == np.inf


def test_rolling_z_of_a_series_no_longer_than_the_window_is_nan() -> None:
    assert np.isnan(rolling_z(np.arange(5.0), 5)).all()


def test_rule_needs_two_of_three_and_gives_onsets_only() -> None:
    """One lone outlier is no alarm; two of three start one; a run continues it."""
    z = np.array([0, 9, 0, 0, 9, 0, 9, 9, 9, 0, 0, 0, -9, -9, np.nan, np.nan])
    assert rule_onsets(z, BaselineRule(threshold=4.0)).tolist() == [6, 13]


def test_rule_with_one_of_one_alerts_on_every_new_outlier() -> None:
    z = np.array([0.0, 5.0, 5.0, 0.0, 5.0])
    assert rule_onsets(z, BaselineRule(hits=1, of=1)).tolist() == [1, 4]


def test_a_level_shift_alerts_the_z_score_but_not_the_persistence_residual() -> None:
    """A step moves the level for good (z stays high) but the difference only once."""
    rng = np.random.default_rng(0)
    x = rng.normal(0.0, 1.0, 400)
    x[250:] += 30.0
    rule = BaselineRule(window=100)
    assert zscore_onsets(x, rule).tolist() == [251]
    assert persistence_onsets(x, rule).tolist() == []


def test_a_spike_alerts_the_persistence_residual_on_the_sample_after_it() -> None:
    """Up then down: two large differences in a row."""
    rng = np.random.default_rng(1)
    x = rng.normal(0.0, 1.0, 400)
    x[300] += 40.0
    assert persistence_onsets(x, BaselineRule()).tolist() == [301]
    assert persistence_onsets(x[:1], BaselineRule()).tolist() == []


def test_rule_rejects_impossible_settings() -> None:
    with pytest.raises(ValueError, match="hits"):
        BaselineRule(hits=4, of=3)


def _message(pid: str, t: float, seq: int, **vitals: float) -> str:
    return json.dumps({"v": 1, "patient_id": pid, "t": t, "seq": seq, "vitals": vitals})


def _write(path: Path, payloads: list[tuple[str, str]]) -> None:
    with RecordingWriter(path, source="test") as writer:
        for i, (topic, payload) in enumerate(payloads):
            writer.write(Record(topic, payload.encode(), T0 + i))


def test_read_samples_keeps_what_the_codec_and_window_store_accept(tmp_path: Path) -> None:
    """Refused messages (artifact, missing feature, wrong topic), duplicates and late
    samples are left out; block messages give one sample each; patients stay apart."""
    rec = tmp_path / "r.jsonl.gz"
    block = json.dumps(
        {
            "v": 1,
            "patient_id": "p1",
            "samples": [
                {"t": T0 + 5, "seq": 5, "vitals": {"heart_rate": 75.0, "spo2": 97.0}},
                {"t": T0 + 6, "seq": 6, "vitals": {"heart_rate": 76.0, "spo2": 97.0}},
            ],
        }
    )
    _write(
        rec,
        [
            ("vitals/p1", _message("p1", T0, 1, heart_rate=70.0, spo2=98.0)),
            ("vitals/p2", _message("p2", T0 + 1, 1, heart_rate=90.0, spo2=95.0)),
            ("vitals/p1", _message("p1", T0 + 2, 2, heart_rate=71.0, spo2=98.0)),
            ("vitals/p1", _message("p1", T0 + 2, 2, heart_rate=71.0, spo2=98.0)),  # duplicate
            ("vitals/p1", _message("p1", T0 + 1, 1, heart_rate=99.0, spo2=98.0)),  # late
            ("vitals/p1", _message("p1", T0 + 3, 3, heart_rate=999.0, spo2=98.0)),  # artifact
            ("vitals/p1", _message("p1", T0 + 4, 4, heart_rate=72.0)),  # spo2 missing
            ("vitals/p9", _message("p1", T0 + 4, 4, heart_rate=72.0, spo2=98.0)),  # topic
            ("vitals/p1", block),
            ("vitals/p2", _message("p2", T0 + 7, 2, heart_rate=91.0, spo2=94.0)),
        ],
    )
    got = read_samples(rec, ["heart_rate", "spo2"])
    assert sorted(got) == ["p1", "p2"]
    assert got["p1"].seq.tolist() == [1, 2, 5, 6]
    assert got["p1"].t.tolist() == [T0, T0 + 2, T0 + 5, T0 + 6]
    assert got["p1"].values[:, 0].tolist() == [70.0, 71.0, 75.0, 76.0]
    assert got["p2"].values.tolist() == [[90.0, 95.0], [91.0, 94.0]]
    only_hr = read_samples(rec, ["heart_rate"])
    assert only_hr["p1"].seq.tolist() == [1, 2, 4, 5, 6]  # spo2 no longer needed


def test_baseline_alerts_are_raised_physiological_alerts_at_the_onset_sample(
    tmp_path: Path,
) -> None:
    """A heart-rate spike in one patient: one onset per baseline, at its sample's t and seq."""
    rng = np.random.default_rng(2)
    hr = 70.0 + rng.normal(0.0, 1.0, 200)
    hr[150] = 120.0
    hr[151] = 118.0
    rec = tmp_path / "r.jsonl"
    _write(
        rec,
        [("vitals/p1", _message("p1", T0 + i, i, heart_rate=float(v))) for i, v in enumerate(hr)],
    )
    samples = read_samples(rec, ["heart_rate"])
    z = baseline_alerts(samples, ["heart_rate"], "rolling_z")
    assert [(a.patient_id, a.vital, a.t, a.seq, a.kind, a.state) for a in z] == [
        ("p1", "heart_rate", T0 + 151, 151, "physiological", "raised")
    ]
    assert z[0].reason == "rolling_z"
    assert [a.seq for a in baseline_alerts(samples, ["heart_rate"], "persistence")] == [152]
    assert scored_hours(samples.values(), 100) == pytest.approx(99 / 3600)


def test_a_vital_missing_from_some_samples_is_scored_on_its_own_samples() -> None:
    """Partial vital sets (NaN where a sample lacks the vital): each vital's baseline runs
    on the samples that carry it, and its onset maps back to that sample's time and seq;
    a vital never sent gives nothing."""
    rng = np.random.default_rng(4)
    n = 400
    values = np.full((n, 3), np.nan)
    values[:, 0] = 80 + rng.standard_normal(n)
    values[::2, 1] = 97 + 0.3 * rng.standard_normal(n // 2)
    values[300, 1] = values[302, 1] = 80.0  # two of SpO2's own samples far out: an onset
    samples = {"p": PatientSamples(np.arange(n, dtype=np.float64), np.arange(n), values)}
    alerts = baseline_alerts(samples, ["heart_rate", "spo2", "resp_rate"], "rolling_z")
    spo2 = [(a.vital, a.seq) for a in alerts if a.vital == "spo2"]
    assert spo2 == [("spo2", 302)]
    assert not [a for a in alerts if a.vital == "resp_rate"]
