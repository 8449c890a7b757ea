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
    actual = np.array([[70.0, 95.0], [71.0, 95.5]])
    events = sensors.flatlines(alarms, ["p", "p"], [1.0, 2.0], stuck, actual)
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


def _masked(first: list[float], second: list[float], sent: list[bool]) -> np.ndarray:
    """A masked window ``(1, len, 4)``: heart rate sent in every sample, SpO2 only where
    `sent` says (held, flag 0, in between)."""
    flags = [[1.0, 1.0 if s else 0.0] for s in sent]
    rows = [[a, b, *f] for a, b, f in zip(first, second, flags, strict=True)]
    return np.array(rows, dtype=np.float32)[None, :, :]


def test_a_slower_vital_is_stuck_when_its_own_last_values_repeat() -> None:
    """SpO2 sent in every other sample: with a run of 4 it is stuck when its own last 3
    values (held ones skipped) equal the new one, not when a held value does; a window
    holding fewer than 3 of its values cannot tell. The heart rate, sent in every
    sample, is judged as before."""
    sensors = StuckSensors(FEATURES, 8, [4, 4], masked=True)
    sent = [True, False] * 4
    hr = [70.0, 71.0, 72.0, 73.0, 74.0, 75.0, 76.0, 77.0]
    stuck_spo2 = [93.0, 93.0, 95.0, 95.0, 95.0, 95.0, 95.0, 95.0]
    window = _masked(hr, stuck_spo2, sent)
    assert sensors.find(window, np.array([[78.0, 95.0]])).tolist() == [[False, True]]
    assert sensors.find(window, np.array([[78.0, 95.5]])).tolist() == [[False, False]]
    assert sensors.find(window, np.array([[78.0, np.nan]])).tolist() == [[False, False]]
    moved = [93.0, 93.0, 94.0, 94.0, 95.0, 95.0, 95.0, 95.0]  # its values: 93, 94, 95, 95
    assert sensors.find(_masked(hr, moved, sent), np.array([[78.0, 95.0]])).tolist() == [
        [False, False]
    ]
    few = [True, False, False, False, True, False, False, True]  # 3 values, the first 93
    flat = [93.0, 93.0, 93.0, 93.0, 95.0, 95.0, 95.0, 95.0]
    assert sensors.find(_masked(hr, flat, few), np.array([[78.0, 95.0]])).tolist() == [
        [False, False]
    ]
    hr_stuck = [70.0, 71.0, 72.0, 73.0, 74.0, 74.0, 74.0, 74.0]
    found = sensors.find(_masked(hr_stuck, stuck_spo2, sent), np.array([[74.0, np.nan]]))
    assert found.tolist() == [[True, False]]
    # In the same row as a slower vital's sample, each is judged on its own.
    found = sensors.find(_masked(hr_stuck, stuck_spo2, sent), np.array([[74.0, 95.0]]))
    assert found.tolist() == [[True, True]]
    found = sensors.find(_masked(hr_stuck, moved, sent), np.array([[74.0, 95.0]]))
    assert found.tolist() == [[True, False]]


def test_a_flatline_stays_open_between_a_slower_vitals_samples() -> None:
    """A row without the vital leaves its flatline as it is (no raise/clear between a
    slower vital's samples); its next different value clears it."""
    sensors = StuckSensors(FEATURES, WINDOW, [5, 5], masked=True)
    alarms = TechnicalAlarms("m", 10)
    stuck = np.array([[False, True], [False, False], [False, True], [False, False]])
    actual = np.array([[70.0, 95.0], [71.0, np.nan], [72.0, 95.0], [73.0, 96.0]])
    events = sensors.flatlines(alarms, ["p"] * 4, [1.0, 2.0, 3.0, 4.0], stuck, actual)
    assert [(e.vital, e.state, e.t) for e in events] == [
        ("spo2", "raised", 1.0),
        ("spo2", "cleared", 4.0),
    ]
