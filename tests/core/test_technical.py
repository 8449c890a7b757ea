"""The technical alarm state machine: one open alert per key, refused patients bounded."""

from __future__ import annotations

import numpy as np

from monitor.core.technical import ROSTER_RESUMABLE, TechnicalAlarms


def test_an_alert_opens_and_closes_once() -> None:
    """Opening an open alert or closing a closed one changes nothing and says nothing."""
    alarms = TechnicalAlarms("v1", max_refused=4)
    assert [e.state for e in alarms.open("a", "signal_lost", None, 1.0)] == ["raised"]
    assert alarms.open("a", "signal_lost", None, 2.0) == []
    assert [e.state for e in alarms.close("a", "signal_lost", None, 3.0)] == ["cleared"]
    assert alarms.close("a", "signal_lost", None, 4.0) == []
    assert len(alarms) == 0
    assert "a" not in alarms.by_patient


def test_close_all_expires_a_patients_alerts_in_a_stable_order() -> None:
    """A forgotten patient's alerts all end with `expired`, sorted by reason then vital."""
    alarms = TechnicalAlarms("v1", max_refused=4)
    alarms.open("a", "signal_lost", None, 1.0)
    alarms.open("a", "flatline", "spo2", 1.0)
    alarms.open("a", "artifact", "heart_rate", 1.0)
    alarms.open("b", "signal_lost", None, 1.0)
    ended = alarms.close_all("a", None, 9.0, "expired")
    assert [(e.reason, e.vital, e.state) for e in ended] == [
        ("artifact", "heart_rate", "expired"),
        ("flatline", "spo2", "expired"),
        ("signal_lost", None, "expired"),
    ]
    assert alarms.flat_open == {}
    assert len(alarms) == 1


def test_refused_patients_are_bounded_and_share_one_system_alert() -> None:
    """The first refused patient raises the system alert; past `max_refused` no more
    per-patient alerts are kept; the system alert clears with the last episode."""
    alarms = TechnicalAlarms("v1", max_refused=2)
    first = alarms.refuse("a", None, 1.0)
    assert [(e.patient_id, e.reason) for e in first] == [
        ("a", "patient_refused"),
        (None, "patients_refused"),
    ]
    assert alarms.refuse("a", None, 2.0) == []
    assert [e.reason for e in alarms.refuse("b", None, 3.0)] == ["patient_refused"]
    assert alarms.refuse("c", None, 4.0) == []
    assert alarms.refused == 2
    assert alarms.silent_refused(5.0, 2.5) == ["a"]
    assert [e.reason for e in alarms.unrefuse("a", 5.0)] == ["patient_refused"]
    assert [(e.reason, e.state) for e in alarms.unrefuse("b", 6.0)] == [
        ("patient_refused", "cleared"),
        ("patients_refused", "cleared"),
    ]
    assert len(alarms) == 0


def test_per_vital_opens_and_closes_one_reason_and_keeps_a_missing_vitals_alert() -> None:
    """Rows in order: opened by one row, kept by a row without the vital, closed by the
    next row that carries it; the other reason's alerts and counts are left alone."""
    alarms = TechnicalAlarms("v1", max_refused=4)
    alarms.open("p", "flatline", "spo2", 0.5)
    on = np.array([[False, True], [False, False], [False, False]])
    actual = np.array([[70.0, np.nan], [71.0, np.nan], [72.0, 96.0]])
    events = alarms.per_vital(
        "vital_lost", ("heart_rate", "spo2"), ["p"] * 3, [1.0, 2.0, 3.0], on, actual
    )
    assert [(e.reason, e.vital, e.state, e.t) for e in events] == [
        ("vital_lost", "spo2", "raised", 1.0),
        ("vital_lost", "spo2", "cleared", 3.0),
    ]
    assert (alarms.lost_open, alarms.flat_open) == ({}, {"p": 1})
    assert (
        alarms.per_vital(
            "vital_lost", ("heart_rate", "spo2"), ["p"], [4.0], on[:1] & False, actual[:1]
        )
        == []
    )


def test_shift_seen_moves_on_the_refused_and_unheld_tracked_before_a_jump() -> None:
    """A receiver away for 1,000 s after t=150 (`shift_seen`): a patient refused at 100 and
    one unheld at 120 are judged silent from the return, one refused after it is not moved;
    their order (least recent first) stays."""
    alarms = TechnicalAlarms("v", max_refused=10)
    alarms.refuse("r1", None, 100.0)
    alarms.open_unheld("u1", "artifact", "spo2", 120.0)
    alarms.refuse("r2", None, 1_151.0)  # after the return
    assert alarms.silent_refused(1_110.0, 8.0) == ["r1"]
    alarms.shift_seen(150.0, 1_000.0)
    assert alarms.silent_refused(1_105.0, 8.0) == []
    assert alarms.silent_unheld(1_125.0, 8.0) == []
    assert alarms.silent_refused(1_109.0, 8.0) == ["r1"]
    assert alarms.silent_unheld(1_129.0, 8.0) == ["u1"]
    assert alarms.silent_refused(1_160.0, 8.0) == ["r1", "r2"]


def test_restore_open_keeps_what_the_restored_state_watches_and_ends_the_rest() -> None:
    """A held patient's `signal_lost` and `flatline` stay open (no event) after a full
    restore; after a roster-only one (another model) its `flatline` ends `expired` (the
    stuck-sensor state is the model's), as do a system alert and an unheld patient's."""
    saved = [
        ("", "inference_stalled", None, 5.0),
        ("p0", "flatline", "spo2", 6.0),
        ("p0", "signal_lost", None, 7.0),
        ("q9", "patient_refused", None, 8.0),
    ]
    full = TechnicalAlarms("v", max_refused=10)
    ended = full.restore_open(saved, {"p0"}, 100.0)
    assert [(e.patient_id, e.reason, e.state, e.t) for e in ended] == [
        (None, "inference_stalled", "expired", 100.0),
        ("q9", "patient_refused", "expired", 100.0),
    ]
    assert full.is_open("p0", "flatline", "spo2")
    assert full.is_open("p0", "signal_lost")
    assert full.flat_open == {"p0": 1}
    roster = TechnicalAlarms("v", max_refused=10)
    ended = roster.restore_open(saved, {"p0"}, 100.0, ROSTER_RESUMABLE)
    assert [(e.patient_id, e.reason) for e in ended] == [
        (None, "inference_stalled"),
        ("p0", "flatline"),
        ("q9", "patient_refused"),
    ]
    assert roster.is_open("p0", "signal_lost")
    assert not roster.is_open("p0", "flatline", "spo2")
