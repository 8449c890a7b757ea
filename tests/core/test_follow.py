"""The per-patient follow of the alarm level (monitor/core/follow.py) and where scoring
applies it (monitor/core/scoring.py)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.detector import Detector, DetectorConfig
from monitor.core.follow import AlarmFollow
from monitor.core.scale import ResidualScale
from monitor.core.scoring import Scorer
from monitor.core.slots import SlotMap
from monitor.core.stuck import StuckSensors
from monitor.core.technical import TechnicalAlarms

FEATURES = ("heart_rate", "spo2")


def _follow(**kw: float) -> AlarmFollow:
    settings = {"level": 3.0, "share": 0.01, "step": 0.01, "max_gain": 4.0, **kw}
    return AlarmFollow(2, **settings)


def _run(follow: AlarmFollow, z: np.ndarray, pid: str = "p", chunk: int = 500) -> np.ndarray:
    return np.concatenate(
        [follow.apply([pid] * len(part), part) for part in np.split(z, range(chunk, len(z), chunk))]
    )


def test_gaussian_residuals_keep_gain_one() -> None:
    """Residuals as the levels assume (|z| > 3 on 0.27 % of samples, under the 1 % share)
    leave the gain at 1 or within a step or two of it (each exceedance adds a step that
    the next hundred calm samples take off): z passes through all but unchanged."""
    z = np.random.default_rng(0).standard_normal((50_000, 2))
    follow = _follow()
    out = _run(follow, z)
    gain = follow.gain("p")
    assert gain is not None
    assert np.all(gain < np.exp(0.05))
    nonzero = z != 0
    assert np.max(np.abs(out[nonzero] / z[nonzero] - 1.0)) < 0.05


def test_heavy_tails_raise_the_gain_until_the_share_is_met() -> None:
    """A Student-t (2) stream passes 3 on about 14 % of its samples; the follow raises the
    gain (bounded) until |z / g| > 3 falls to the share, on one vital only."""
    rng = np.random.default_rng(1)
    z = np.column_stack([rng.standard_t(2, 100_000), rng.standard_normal(100_000)])
    follow = _follow(max_gain=64.0)
    out = _run(follow, z)
    gain = follow.gain("p")
    assert gain is not None
    assert gain[0] > 2.0
    assert gain[1] < np.exp(0.05)
    late = np.abs(out[50_000:, 0]) > 3.0
    assert 0.005 < late.mean() < 0.02
    # Bounded: the same stream with max_gain 2 stops at 2.
    capped = _follow(max_gain=2.0)
    _run(capped, z)
    assert capped.gain("p") == pytest.approx([2.0, 1.0], abs=0.05)


def test_one_outlier_moves_the_gain_by_one_step_only() -> None:
    """A lone exceedance adds `step` to the log-gain: slow, so a single real event does not
    blind the stream."""
    follow = _follow()
    z = np.zeros((3, 2))
    z[1, 0] = 50.0
    out = follow.apply(["p"] * 3, z)
    assert out[1, 0] == 50.0  # judged before its own step
    gain = follow.gain("p")
    assert gain is not None
    # +step * (1 - share) for the outlier, -step * share for the calm sample after it.
    assert np.log(gain[0]) == pytest.approx(0.01 * (1 - 0.01) - 0.01 * 0.01)


def test_a_batch_equals_row_by_row_and_patients_are_apart() -> None:
    """Rows of several patients in one batch give what one row at a time gives; a patient's
    tail does not move another's gain; a forgotten patient starts at 1 again."""
    rng = np.random.default_rng(2)
    ids = [str(i) for i in rng.integers(0, 3, 3000)]
    z = rng.standard_t(2, (3000, 2))
    z[np.array(ids) == "0"] = 0.0
    batch, single = _follow(), _follow()
    out = batch.apply(ids, z)
    one = np.concatenate([single.apply([p], z[i : i + 1]) for i, p in enumerate(ids)])
    np.testing.assert_allclose(out, one)
    assert batch.gain("0") == pytest.approx([1.0, 1.0])
    g1 = batch.gain("1")
    assert g1 is not None
    assert np.all(g1 > 1.5)
    batch.forget("1")
    assert batch.gain("1") is None
    batch.apply(["1"], np.zeros((1, 2)))
    assert batch.gain("1") == pytest.approx([1.0, 1.0])


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="share"):
        _follow(share=0.0)
    with pytest.raises(ValueError, match="max_gain"):
        _follow(max_gain=0.5)


def _scorer(clip_at: float | None, config: DetectorConfig) -> Scorer:
    patients = SlotMap()
    scale = ResidualScale(np.ones(2), patients=patients, clip_at=clip_at)
    detector = Detector(FEATURES, config, model_version="m", patients=patients)
    stuck = StuckSensors(FEATURES, 8, [5, 5], masked=False, patients=patients)
    return Scorer(patients, scale, detector, stuck, np.ones(2), TechnicalAlarms("m", 10))


def test_scoring_follows_only_models_with_a_clipped_scale() -> None:
    """A model trained on a real recording (its card clips the scale) gets the follow by
    default; `follow_level` None turns it off. The follow shares the scorer's patient
    table. A model with no clip (the shipped one) follows only slow streams' rows."""
    real = _scorer(6.0, DetectorConfig())
    assert real.follow is not None
    assert real.follow.patients is real.patients
    assert _scorer(6.0, DetectorConfig(follow_level=None)).follow is None


def _raises(scorer: Scorer, actual: np.ndarray, slow: bool | None) -> list:
    n = actual.shape[0]
    rng = np.random.default_rng(5)
    windows = rng.standard_normal((n, 8, 2)).astype(np.float32)
    predicted = np.zeros((n, 2), dtype=np.float32)
    raised = []
    for lo in range(0, n, 1000):
        hi = min(n, lo + 1000)
        mask = None if slow is None else np.full(hi - lo, slow)
        got = scorer.score(
            ["p"] * (hi - lo), windows[lo:hi], actual[lo:hi], predicted[lo:hi],
            [float(t) for t in range(lo, hi)], list(range(lo, hi)), slow=mask,
        )  # fmt: skip
        raised += [(e.seq, e.vital, e.reason) for e in got.alerts if e.state == "raised"]
    return raised


def test_an_unclipped_model_follows_a_slow_streams_rows_only() -> None:
    """Without a clip, rows not flagged slow score exactly as with the follow off (the
    1 Hz simulator's alerts stay as they were); a slow stream's heavy tails raise far fewer
    alerts (its scale is winsorised and its level follows), a large outlier still raises."""
    rng = np.random.default_rng(3)
    actual = rng.standard_t(2, (20_000, 2))
    actual[-5, 0] = 400.0
    off = _raises(_scorer(None, DetectorConfig(follow_level=None)), actual, None)
    assert _raises(_scorer(None, DetectorConfig()), actual, None) == off
    assert _raises(_scorer(None, DetectorConfig()), actual, False) == off
    slow = _raises(_scorer(None, DetectorConfig()), actual, True)
    assert len(slow) < 0.5 * len(off)
    assert any(seq == 20_000 - 5 and vital == "heart_rate" for seq, vital, _ in slow)


def test_a_heavy_tailed_stream_raises_fewer_alerts_with_the_follow() -> None:
    """The same heavy-tailed residuals scored with and without the follow: fewer raises with
    it, and a large late outlier is still raised."""
    rng = np.random.default_rng(3)
    n = 20_000
    actual = rng.standard_t(2, (n, 2))
    actual[-5, 0] = 400.0
    windows = rng.standard_normal((n, 8, 2)).astype(np.float32)
    predicted = np.zeros((n, 2), dtype=np.float32)
    counts = {}
    for name, cfg in (("on", DetectorConfig()), ("off", DetectorConfig(follow_level=None))):
        scorer = _scorer(6.0, cfg)
        raised = []
        for lo in range(0, n, 1000):
            hi = lo + 1000
            got = scorer.score(
                ["p"] * (hi - lo),
                windows[lo:hi],
                actual[lo:hi],
                predicted[lo:hi],
                [float(t) for t in range(lo, hi)],
                list(range(lo, hi)),
            )
            raised += [e for e in got.alerts if e.state == "raised"]
        counts[name] = raised
    assert len(counts["on"]) < 0.7 * len(counts["off"])
    assert any(e.seq == n - 5 and e.vital == "heart_rate" for e in counts["on"])
