"""Event-level scoring on small hand-made cases with known answers."""

from __future__ import annotations

import pytest

from monitor.evaluation.scoring import Alert, ScoringConfig, alert_from_dict, evaluate
from monitor.replay.labels import Label

T0 = 1_700_000_000.0


def _label(pid: str, vital: str | None, kind: str, start: int, end: int, mag: float) -> Label:
    return Label(pid, vital, kind, T0 + start, T0 + end, start, end, mag)


def _alert(
    pid: str,
    vital: str | None,
    at: int,
    kind: str = "physiological",
    state: str = "raised",
    reason: str | None = None,
) -> Alert:
    return Alert(pid, vital, T0 + at, at, kind, state, reason)


LABELS = [
    _label("p1", "heart_rate", "spike", 100, 100, 10.0),  # found at +1
    _label("p1", "spo2", "level_shift", 200, 260, 5.0),  # found at +3
    _label("p2", "heart_rate", "drift", 300, 400, 3.0),  # missed
    _label("p2", None, "dropout", 500, 530, 6.0),  # found by signal_lost at +10
]
ALERTS = [
    _alert("p1", "heart_rate", 101),
    _alert("p1", "heart_rate", 110, state="cleared"),
    _alert("p1", "spo2", 203),
    _alert("p1", "spo2", 262),  # inside end + tolerance (3): true positive
    _alert("p1", "heart_rate", 150),  # false alarm
    _alert("p2", "spo2", 350),  # wrong vital for the drift: false alarm
    _alert("p2", None, 510, kind="technical", reason="signal_lost"),
    _alert("p3", "bp_sys", 100),  # patient without labels: false alarm
]


def test_counts_rates_and_delays_match_hand_computation() -> None:
    """3 of 4 labels found, 4 of 7 raised alerts match, delays (1, 3, 10) samples."""
    result = evaluate(ALERTS, LABELS, patient_hours=3.0)
    j = result.to_json()
    assert (j["labels"], j["detected"], j["alerts"], j["false_alarms"]) == (4, 3, 7, 3)
    assert j["recall"] == 0.75
    assert j["precision"] == pytest.approx(4 / 7)
    assert j["f1"] == pytest.approx(2 * (4 / 7) * 0.75 / (4 / 7 + 0.75))
    assert j["median_delay_samples"] == 3.0
    assert j["p95_delay_samples"] == pytest.approx(3 + 0.9 * 7)
    assert j["median_delay_seconds"] == 3.0
    assert j["false_alarms_per_patient_hour"] == 1.0
    assert [m.kind for m in result.missed] == ["drift"]


def test_breakdowns_per_kind_vital_and_magnitude() -> None:
    """Per-kind recall, per-vital alerts and precision, and the 4-sigma buckets are exact."""
    j = evaluate(ALERTS, LABELS, patient_hours=3.0).to_json()
    assert {k: v["recall"] for k, v in j["per_kind"].items()} == {
        "dropout": 1.0,
        "drift": 0.0,
        "level_shift": 1.0,
        "spike": 1.0,
    }
    hr = j["per_vital"]["heart_rate"]
    assert (hr["labels"], hr["detected"], hr["alerts"], hr["false_alarms"]) == (2, 1, 2, 1)
    assert j["per_vital"]["spo2"]["precision"] == pytest.approx(2 / 3)
    assert j["per_vital"]["*"]["alerts"] == 1
    assert j["per_vital"]["bp_sys"]["precision"] == 0.0
    assert j["per_magnitude"][">=4"]["recall"] == 1.0
    assert j["per_magnitude"]["<4"]["recall"] == 0.0


def test_tolerance_is_configurable_in_samples() -> None:
    """Zero tolerance: alerts 1 sample after the spike and 2 after the shift's end stop matching."""
    tight = evaluate(ALERTS, LABELS, patient_hours=3.0, config=ScoringConfig(tolerance_samples=0))
    assert (tight.detected, tight.matched_alerts) == (2, 2)
    slow = ScoringConfig(tolerance_samples=1, sample_period_s=2.0)
    assert evaluate(ALERTS, LABELS, patient_hours=3.0, config=slow).matched_alerts == 4


def test_dropout_needs_a_signal_lost_alert_and_physiological_labels_ignore_technical() -> None:
    """A physiological alert does not detect a dropout; a technical one does not detect a spike."""
    labels = [_label("p1", None, "dropout", 10, 20, 6.0), _label("p1", "spo2", "spike", 10, 10, 9)]
    alerts = [
        _alert("p1", "spo2", 12, kind="technical", reason="implausible"),
        _alert("p1", "heart_rate", 15),
    ]
    result = evaluate(alerts, labels, patient_hours=1.0)
    assert (result.detected, result.matched_alerts) == (0, 0)
    found = evaluate(
        [_alert("p1", "heart_rate", 12, kind="technical", reason="signal_lost")],
        labels[:1],
        patient_hours=1.0,
    )
    assert found.detected == 1


def test_a_probe_off_needs_vital_lost_on_its_vital_and_a_dropout_signal_lost() -> None:
    """A probe off (one vital silent) is detected by `vital_lost` on that vital only: not
    on another vital, not by `signal_lost`, not by a physiological alert; `vital_lost`
    does not detect a dropout of the whole patient."""
    probe = [_label("p1", "spo2", "probe_off", 10, 40, 0.0)]
    for wrong in (
        _alert("p1", "heart_rate", 18, kind="technical", reason="vital_lost"),
        _alert("p1", None, 18, kind="technical", reason="signal_lost"),
        _alert("p1", "spo2", 18),
    ):
        assert evaluate([wrong], probe, patient_hours=1.0).detected == 0, wrong
    right = _alert("p1", "spo2", 18, kind="technical", reason="vital_lost")
    found = evaluate([right], probe, patient_hours=1.0)
    assert (found.detected, found.matched_alerts, found.events_json()["onsets"]) == (1, 1, 1)
    dropout = [_label("p1", None, "dropout", 10, 40, 0.0)]
    assert evaluate([right], dropout, patient_hours=1.0).detected == 0


def test_alert_before_label_start_does_not_match_and_empty_inputs_are_null() -> None:
    """An alert one sample early is a false alarm; with nothing to score, rates are None."""
    result = evaluate([_alert("p1", "heart_rate", 99)], LABELS[:1], patient_hours=0.5)
    assert (result.recall, result.precision, result.f1) == (0.0, 0.0, 0.0)
    assert result.false_alarms_per_patient_hour == 2.0
    empty = evaluate([], [], patient_hours=0.0).to_json()
    assert (empty["precision"], empty["recall"], empty["f1"]) == (None, None, None)
    assert empty["median_delay_samples"] is None
    assert empty["false_alarms_per_patient_hour"] is None


def test_alert_from_dict_reads_alert_event_json() -> None:
    """An AlertEvent JSON object becomes an Alert; unknown keys are ignored."""
    obj = {
        "v": 1,
        "kind": "technical",
        "patient_id": "p9",
        "vital": None,
        "state": "cleared",
        "severity": "low",
        "t": 12.5,
        "seq": 7,
        "z": None,
        "reason": "signal_lost",
    }
    assert alert_from_dict(obj) == Alert("p9", None, 12.5, 7, "technical", "cleared", "signal_lost")


def test_events_count_one_detection_per_event_and_keep_technical_alerts_apart() -> None:
    """EVALUATION.md's counting on the hand-made case: the second onset inside the spo2
    shift adds nothing; unmatched physiological onsets (3) are the false alerts; the 7
    onsets include the signal-lost alert that detects the dropout, also reported as a
    technical alert."""
    j = evaluate(ALERTS, LABELS, patient_hours=3.0).events_json()
    assert (j["events"], j["detected"], j["onsets"], j["false_alerts"]) == (4, 3, 7, 3)
    assert j["precision"] == 0.5  # 3 detected / (3 detected + 3 false)
    assert j["recall"] == 0.75
    assert j["f1"] == pytest.approx(2 * 0.5 * 0.75 / 1.25)
    assert j["median_delay_seconds"] == 3.0
    assert j["p95_delay_seconds"] == pytest.approx(3 + 0.9 * 7)
    assert j["false_alerts_per_hour"] == 1.0
    assert j["false_alerts_per_patient_day"] == 24.0
    assert (j["technical_alerts"], j["technical_alerts_per_hour"]) == (1, 1 / 3)
    assert j["scored_hours"] == 3.0
    assert j["max_onsets_stream_hour"] == 2  # p1 heart_rate at 101 and 150


def test_unmatched_technical_alerts_are_not_false_alerts() -> None:
    alerts = [_alert("p1", "spo2", 10, kind="technical", reason="artifact")]
    j = evaluate(alerts, [], patient_hours=1.0).events_json()
    assert (j["false_alerts"], j["onsets"], j["technical_alerts"]) == (0, 0, 1)
    assert j["precision"] is None
    assert j["recall"] is None
    assert j["f1"] is None
    assert evaluate(alerts, [], patient_hours=0.0).events_json()["false_alerts_per_hour"] is None


def test_false_alerts_are_counted_by_the_rule_that_raised_them() -> None:
    """`false_alerts_by_rule`: unmatched physiological onsets by their reason ("-" when
    none); a detecting onset and a technical alert are not in it."""
    alerts = [
        _alert("p1", "heart_rate", 10, reason="shift"),
        _alert("p1", "heart_rate", 500, reason="shift"),
        _alert("p1", "spo2", 900, reason="spike"),
        _alert("p1", "spo2", 2000, reason="spike"),  # inside the label: a detection
        _alert("p1", "spo2", 3000),
        _alert("p1", "spo2", 4000, kind="technical", reason="signal_lost"),
    ]
    labels = [_label("p1", "spo2", "spike", 1990, 2010, 5.0)]
    j = evaluate(alerts, labels, patient_hours=2.0).events_json()
    assert j["false_alerts_by_rule"] == {"-": 1, "shift": 2, "spike": 1}
    assert j["false_alerts"] == 4


def test_the_onset_list_is_what_onsets_and_false_alerts_count() -> None:
    """Every counted onset once, in time order, marked as detecting or false: cleared events
    and technical alerts that detect nothing are not onsets; a technical alert that detects
    a flatline label is; a second hit in one label detects too."""
    alerts = [
        _alert("p1", "spo2", 2005, reason="spike"),
        _alert("p1", "spo2", 2001, reason="spike"),
        _alert("p1", "spo2", 2002, state="cleared"),
        _alert("p1", "heart_rate", 10, reason="shift"),
        _alert("p1", "heart_rate", 4000, kind="technical", reason="signal_lost"),
        _alert("p2", "spo2", 500, kind="technical", reason="flatline"),
    ]
    labels = [
        _label("p1", "spo2", "spike", 1990, 2010, 5.0),
        _label("p2", "spo2", "flatline", 490, 600, 0.0),
    ]
    ev = evaluate(alerts, labels, patient_hours=1.0)
    got = [(o.alert.patient_id, o.alert.t - T0, o.alert.reason, o.detects) for o in ev.onset_list]
    assert got == [
        ("p1", 10, "shift", False),
        ("p2", 500, "flatline", True),
        ("p1", 2001, "spike", True),
        ("p1", 2005, "spike", True),
    ]
    j = ev.events_json()
    assert j["onsets"] == len(got)
    assert j["false_alerts"] == sum(not d for *_, d in got)


def test_most_onsets_in_one_hour_is_per_stream_and_per_hour() -> None:
    """Five onsets within an hour on one stream, others spread or on other streams."""
    at = [0, 600, 1200, 1800, 3599, 3600 + 1800, 20_000]
    alerts = [_alert("p1", "heart_rate", t) for t in at]
    alerts += [_alert("p1", "spo2", t) for t in range(0, 600, 100)]  # six on another vital
    alerts += [_alert("p2", "heart_rate", t) for t in range(5)]  # five on another patient
    alerts += [_alert("p1", "heart_rate", t, state="cleared") for t in range(10)]
    result = evaluate(alerts, [], patient_hours=10.0)
    assert result.max_onsets_stream_hour == 6
    alerts = [a for a in alerts if a.vital != "spo2"]
    assert evaluate(alerts, [], patient_hours=10.0).max_onsets_stream_hour == 5


def test_tolerance_in_seconds_overrides_samples_times_period() -> None:
    label = [_label("p1", "heart_rate", "beat", 100, 100, 1.0)]
    late = [_alert("p1", "heart_rate", 104)]
    assert evaluate(late, label, patient_hours=1.0).detected == 0
    config = ScoringConfig(tolerance_seconds=4.0)
    assert config.tolerance_s == 4.0
    assert evaluate(late, label, patient_hours=1.0, config=config).detected == 1


def test_a_tolerance_before_the_start_matches_an_early_onset_with_delay_zero() -> None:
    """Off by default (one second early is a false alert); `tolerance_before_s` 1 counts an
    onset up to 1 s before a hand-marked event's start as its detection, delay 0, and the
    event counting and false alerts follow; 2 s early is still false."""
    label = [_label("p1", None, "event", 100, 130, 0.0)]
    early = [_alert("p1", "bp_dia", 99)]
    plain = evaluate(early, label, patient_hours=1.0)
    assert (plain.detected, plain.false_alarms) == (0, 1)
    config = ScoringConfig(tolerance_seconds=5.0, tolerance_before_s=1.0)
    tolerant = evaluate(early, label, patient_hours=1.0, config=config)
    assert (tolerant.detected, tolerant.false_alarms) == (1, 0)
    assert tolerant.delays_s == [0.0]
    events = tolerant.events_json()
    assert (events["detected"], events["false_alerts"]) == (1, 0)
    too_early = evaluate([_alert("p1", "bp_dia", 98)], label, patient_hours=1.0, config=config)
    assert (too_early.detected, too_early.false_alarms) == (0, 1)
