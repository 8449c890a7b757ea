"""Stuck sensors (monitor/core/stuck.py): the flatline mask, the distrust of z, the alerts."""

from __future__ import annotations

import numpy as np

from monitor.core.slots import SlotMap
from monitor.core.stuck import FLATLINE_SAMPLES, StuckSensors, flatline_samples
from monitor.core.technical import TechnicalAlarms
from monitor.core.vitals import Registry

FEATURES = ("heart_rate", "spo2")
WINDOW = 6


def _window(first: list[float], second: list[float]) -> np.ndarray:
    return np.array([first, second], dtype=np.float32).T[None, :, :]


def test_a_sample_repeating_the_last_run_minus_one_values_is_stuck() -> None:
    """With a run of 5, the sample is stuck when the window's last 4 values equal it; the
    vital with a run longer than the window plus one gets no check at all."""
    sensors = StuckSensors(FEATURES, WINDOW, [5, 8], masked=False)
    window = _window([1, 2, 7, 7, 7, 7], [3, 3, 3, 3, 3, 3])
    stuck = sensors.find(window, np.array([[7.0, 3.0]]))
    assert stuck.tolist() == [[True, False]]
    assert sensors.find(window, np.array([[7.5, 3.0]])).tolist() == [[False, False]]


def test_untrusted_z_is_zero_until_the_stuck_sample_leaves_the_window() -> None:
    """A vital's z counts as 0 from its stuck sample until `window` samples after it, then
    is passed through again (and the patient's history is dropped)."""
    patients = SlotMap()
    sensors = StuckSensors(FEATURES, WINDOW, [5, 5], masked=False, patients=patients)
    seen = []
    for seq in range(10, 20):
        stuck = np.array([[seq == 10, False]])
        z = np.array([[5.0, 5.0]])
        sensors.distrust(patients.assign(["p"]), [seq], stuck, z)
        seen.append(z[0].tolist())
    assert seen[: WINDOW + 1] == [[0.0, 5.0]] * (WINDOW + 1)
    assert seen[WINDOW + 1 :] == [[5.0, 5.0]] * (10 - WINDOW - 1)


def test_flatline_opens_per_stuck_vital_and_closes_when_it_moves_in_one_batch() -> None:
    """A patient stuck in one row and not in its next row of the same batch gets the alert
    raised and cleared, at each row's time."""
    sensors = StuckSensors(FEATURES, WINDOW, [5, 5], masked=False)
    alarms = TechnicalAlarms("m", 10)
    stuck = np.array([[False, True], [False, False]])
    events = sensors.flatlines(alarms, ["p", "p"], [1.0, 2.0], stuck, [True, False])
    assert [(e.vital, e.state, e.t) for e in events] == [
        ("spo2", "raised", 1.0),
        ("spo2", "cleared", 2.0),
    ]


def test_declared_run_beats_learned_beats_default() -> None:
    """The registry's declared run wins, else the learned one, else FLATLINE_SAMPLES."""
    assert flatline_samples(FEATURES, None, Registry([])) == [FLATLINE_SAMPLES] * 2
    assert flatline_samples(FEATURES, (9, 12), Registry([])) == [9, 12]


def test_a_stuck_history_ends_with_its_patient_and_a_reused_slot_starts_clean() -> None:
    """The history lives in the patient's slot of the shared table: once the patient leaves
    (released), the next patient given that slot is trusted from its first sample, and the
    common batch (nothing stuck, no history) is left alone."""
    patients = SlotMap()
    sensors = StuckSensors(FEATURES, WINDOW, [5, 5], masked=False, patients=patients)
    z = np.array([[5.0, 5.0]])
    sensors.distrust(patients.assign(["old"]), [1], np.array([[True, False]]), z)
    assert z.tolist() == [[0.0, 5.0]]
    slot = patients.release("old")
    placed = patients.assign(["new"])
    assert placed.slots.tolist() == [slot]
    z = np.array([[5.0, 5.0]])
    sensors.distrust(placed, [2], np.array([[False, False]]), z)
    assert z.tolist() == [[5.0, 5.0]]
    # Same slot, same patient: the history goes on.
    sensors.distrust(placed, [3], np.array([[False, True]]), z)
    z = np.array([[5.0, 5.0]])
    sensors.distrust(placed, [4], np.array([[False, False]]), z)
    assert z.tolist() == [[5.0, 0.0]]
