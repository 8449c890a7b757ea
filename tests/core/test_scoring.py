"""Scoring over one patient table (monitor/core/scoring.py, monitor/core/slots.py)."""

from __future__ import annotations

import numpy as np

from monitor.core.detector import Detector, DetectorConfig
from monitor.core.scale import ResidualScale
from monitor.core.scoring import Scorer
from monitor.core.slots import Placement, SlotMap
from monitor.core.stuck import StuckSensors
from monitor.core.technical import TechnicalAlarms

FEATURES = ("heart_rate", "spo2")
WINDOW = 8


class CountingSlots(SlotMap):
    """A patient table that counts how often a batch is placed in it."""

    def __init__(self) -> None:
        super().__init__()
        self.placed = 0

    def assign(self, patient_ids: list[str]) -> Placement:  # type: ignore[override]
        self.placed += 1
        return super().assign(patient_ids)


def _scorer(patients: SlotMap) -> Scorer:
    scale = ResidualScale(np.ones(2), patients=patients)
    detector = Detector(FEATURES, DetectorConfig(), model_version="m", patients=patients)
    stuck = StuckSensors(FEATURES, WINDOW, [5, 5], masked=False, patients=patients)
    return Scorer(patients, scale, detector, stuck, np.ones(2), TechnicalAlarms("m", 10))


def _batch(rng: np.random.Generator, ids: list[str], shift: float = 0.0) -> tuple:
    windows = rng.normal(size=(len(ids), WINDOW, 2)).astype(np.float32)
    actual = rng.normal(size=(len(ids), 2)) + shift
    return windows, actual, np.zeros((len(ids), 2), dtype=np.float32)


def test_a_batch_is_placed_once_for_the_scale_and_the_detector() -> None:
    """One placement per batch; both components hold the same patients in the same slots."""
    patients = CountingSlots()
    scorer = _scorer(patients)
    rng = np.random.default_rng(0)
    ids = ["a", "b", "a"]
    windows, actual, predicted = _batch(rng, ids)
    scorer.score(ids, windows, actual, predicted, [0.0, 0.0, 1.0], [0, 0, 1])
    assert patients.placed == 1
    assert len(scorer.scale) == len(scorer.detector) == len(patients) == 2


def test_shared_table_scores_as_separate_tables_did() -> None:
    """The scale and the detector on one table give the z and events that each on its own
    table gives, through new patients, repeats, a forget and a reused slot."""
    rng = np.random.default_rng(1)
    shared = _scorer(SlotMap())
    scale = ResidualScale(np.ones(2))
    detector = Detector(FEATURES, DetectorConfig(), model_version="m")
    events_seen = 0
    for step in range(120):
        ids = [f"p{i}" for i in rng.integers(0, 6, size=5)]
        windows, actual, predicted = _batch(rng, ids, shift=4.0 * (step % 30 > 25))
        t, seq = [float(step)] * 5, [step] * 5
        got = shared.score(ids, windows, actual, predicted, t, seq)
        z = scale.z_batch(ids, windows, actual - predicted)
        np.testing.assert_array_equal(got.absz, np.abs(z))
        expected = detector.update_many(ids, z, t, seq, actual, predicted)
        assert got.alerts == expected
        events_seen += len(expected)
        if step % 40 == 39:
            shared.forget("p1")
            scale.forget("p1")
            detector.forget("p1")
    assert events_seen > 0


def test_forget_drops_every_component_and_a_reused_slot_starts_fresh() -> None:
    """After a forget, the patient's slot goes to the next new patient, whose scale and
    detector state start from scratch (not the old patient's)."""
    patients = SlotMap()
    scorer = _scorer(patients)
    rng = np.random.default_rng(2)
    windows, actual, predicted = _batch(rng, ["old"], shift=9.0)
    scorer.score(["old"], windows, actual, predicted, [0.0], [0])
    assert scorer.detector.active("old") == ["heart_rate", "spo2"]
    slot = patients.get("old")
    scorer.forget("old")
    assert scorer.scale.sigma("old") is None
    assert scorer.detector.active("old") == []
    windows, actual, predicted = _batch(rng, ["new"])
    got = scorer.score(["new"], windows, actual * 0.0, predicted, [1.0], [1])
    assert patients.get("new") == slot
    assert got.alerts == []
    assert scorer.detector.active("new") == []


def test_snapshot_round_trip_through_a_shared_table() -> None:
    """Exported scale and detector state imported into components on one fresh table: the
    first import places the patients, the second takes their slots, and scoring goes on
    exactly as in the original."""
    rng = np.random.default_rng(3)
    original = _scorer(SlotMap())
    ids = ["a", "b", "c"]
    for step in range(40):
        windows, actual, predicted = _batch(rng, ids, shift=6.0 * (step > 35))
        original.score(ids, windows, actual, predicted, [float(step)] * 3, [step] * 3)
    scale_ids, scale_arrays = original.scale.export_state()
    det_ids, det_arrays = original.detector.export_state()
    restored = _scorer(SlotMap())
    restored.scale.import_state(scale_ids, scale_arrays)
    restored.detector.import_state(det_ids, det_arrays)
    assert len(restored.patients) == 3
    assert any(original.detector.active(p) for p in ids)  # alerts open when saved
    events_seen = 0
    for step in range(40, 60):
        windows, actual, predicted = _batch(rng, ids)
        args = (ids, windows, actual, predicted, [float(step)] * 3, [step] * 3)
        expected, got = original.score(*args), restored.score(*args)
        np.testing.assert_array_equal(got.absz, expected.absz)
        assert got.alerts == expected.alerts
        events_seen += len(expected.alerts)
    assert events_seen > 0
