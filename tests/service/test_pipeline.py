"""The synchronous pipeline: outcomes, technical alerts and scoring, without a broker."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent
from monitor.core.detector import DetectorConfig
from monitor.core.settle import GAP_SETTLE_VALUES
from monitor.core.vitals import Registry, Vital
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.service.metrics import Metrics
from monitor.settings import Settings
from tests.support.ecg import PERIOD, beats_every, ecg, ecg_at
from tests.support.ingest import ingest_one

FEATURES = ("heart_rate", "spo2")
T0 = 1_700_000_000.0


def make(length: int = 4, **settings: object) -> Pipeline:
    info = ModelInfo(FEATURES, length, np.array([1.0, 0.5]), "v-test")
    return Pipeline(info, Settings.model_validate(settings), Metrics.create(CollectorRegistry()))


def payload(pid: str, seq: int, hr: float, spo2: float = 97.0) -> bytes:
    body = {
        "v": 1,
        "patient_id": pid,
        "t": T0 + seq,
        "seq": seq,
        "vitals": {"heart_rate": hr, "spo2": spo2},
    }
    return json.dumps(body).encode()


def outcomes(p: Pipeline) -> dict[str, float]:
    out = {}
    for family in p.metrics.registry.collect():
        if family.name == "monitor_messages":
            for s in family.samples:
                if s.name.endswith("_total") and s.value:
                    out[s.labels["outcome"]] = s.value
    return out


def feed(p: Pipeline, pid: str, values: list[float], start: int = 0) -> list[AlertEvent]:
    events: list[AlertEvent] = []
    for i, v in enumerate(values):
        seq = start + i
        events += ingest_one(p, f"vitals/{pid}", payload(pid, seq, v), T0 + seq)
    return events


def score_all(p: Pipeline, predictor: float | None = None) -> list[AlertEvent]:
    """Score queued jobs, predicting the last value of each window (persistence)."""
    jobs = p.take_batch()
    # A masked window's rows hold the values, then the observed flags.
    preds = np.stack([j.context[-1][: len(FEATURES)] for j in jobs]).astype(np.float32)
    if predictor is not None:
        preds[:] = predictor
    return p.score(jobs, preds, T0 + 1000, live=False)


def test_each_sample_gets_one_outcome_and_ready_windows_are_queued() -> None:
    """4 warm-up samples, then one job per sample; duplicates, late and junk are counted."""
    p = make()
    rng = np.random.default_rng(0)
    feed(p, "a", list(70 + rng.standard_normal(10)))
    ingest_one(p, "vitals/a", payload("a", 9, 70.0), T0 + 10)  # duplicate
    ingest_one(p, "vitals/a", payload("a", 3, 70.0), T0 + 10)  # late
    ingest_one(p, "vitals/a", b"{nope", T0 + 10)
    assert len(p.batcher) == 6
    score_all(p)
    assert outcomes(p) == {"warming_up": 4, "scored": 6, "duplicate": 1, "late": 1, "invalid": 1}


def test_a_stuck_value_raises_and_clears_a_flatline_alert() -> None:
    """Five equal values in a row raise 'flatline' for that vital; a change clears it."""
    p = make()
    rng = np.random.default_rng(1)
    feed(p, "b", list(70 + rng.standard_normal(6)))
    score_all(p)
    feed(p, "b", [71.5] * 5, start=6)
    raised = [e for e in score_all(p) if e.reason == "flatline"]
    assert [(e.vital, e.state, e.seq) for e in raised] == [("heart_rate", "raised", None)]
    feed(p, "b", [69.0], start=11)
    cleared = [e for e in score_all(p) if e.reason == "flatline"]
    assert [(e.vital, e.state) for e in cleared] == [("heart_rate", "cleared")]


def test_artifact_is_technical_and_silence_raises_signal_lost() -> None:
    """HR 400 is an artifact (technical, never physiological); a silent patient is 'signal lost'."""
    p = make(window={"stale_after_s": 5.0})
    events = ingest_one(p, "vitals/c", payload("c", 0, 400.0), T0)
    assert [(e.kind, e.reason, e.vital, e.state) for e in events] == [
        ("technical", "artifact", "heart_rate", "raised")
    ]
    events = ingest_one(p, "vitals/c", payload("c", 1, 72.0), T0 + 1)
    assert [(e.reason, e.state) for e in events] == [("artifact", "cleared")]
    lost = p.housekeeping(T0 + 10)
    assert [(e.patient_id, e.reason, e.state) for e in lost] == [("c", "signal_lost", "raised")]
    assert p.housekeeping(T0 + 11) == []
    back = ingest_one(p, "vitals/c", payload("c", 2, 72.0), T0 + 12)
    assert [(e.reason, e.state) for e in back] == [("signal_lost", "cleared")]


def test_with_partial_vitals_an_artifact_drops_only_its_vital() -> None:
    """A model with an observed mask: SpO2 0 (a probe off) for three samples is one
    `artifact` alert on spo2, open while the samples show it (no raise/clear flapping), and
    each of those samples is still scored on heart rate; the first plausible SpO2 clears
    it. A sample with nothing plausible left is refused as before."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    p = Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))
    rng = np.random.default_rng(3)
    feed(p, "d", list(70 + rng.standard_normal(6)))
    score_all(p)
    technical: list[tuple[str | None, str | None, str]] = []
    for seq in (6, 7, 8):
        events = ingest_one(p, "vitals/d", payload("d", seq, 70.0 + seq % 2, 0.0), T0 + seq)
        events += score_all(p)
        technical += [(e.reason, e.vital, e.state) for e in events if e.reason == "artifact"]
    assert technical == [("artifact", "spo2", "raised")]
    assert outcomes(p) == {"warming_up": 4, "scored": 5}
    counted = p.metrics.registry.get_sample_value(
        "monitor_artifact_values_total", {"vital": "spo2"}
    )
    assert counted == 3
    jobs_before = len(p.batcher)
    events = ingest_one(p, "vitals/d", payload("d", 9, 71.0, 97.0), T0 + 9)
    assert [(e.reason, e.vital, e.state) for e in events if e.reason == "artifact"] == [
        ("artifact", "spo2", "cleared")
    ]
    assert len(p.batcher) == jobs_before + 1
    events = ingest_one(p, "vitals/d", payload("d", 10, 400.0, 0.0), T0 + 10)
    assert [(e.reason, e.vital, e.state) for e in events if e.reason == "artifact"] == [
        ("artifact", "heart_rate", "raised")
    ]
    assert outcomes(p)["invalid"] == 1


def test_an_artifact_of_a_patient_refused_at_the_cap_expires_with_its_silence() -> None:
    """Partial-vitals samples with SpO2 0 of patients the cap refuses: their artifact
    alerts are tracked as a refused message's are (at most `window.max_patients` ids, past
    that only counted), and end `expired` once the patients have been silent for
    `window.stale_after_s`; nothing stays open for an id never admitted."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    settings = Settings.model_validate({"window": {"max_patients": 1, "stale_after_s": 5.0}})
    p = Pipeline(info, settings, Metrics.create(CollectorRegistry()))
    feed(p, "a", [70.0, 71.0, 70.0, 72.0, 71.0, 70.0])  # its window filled: not evictable
    events = ingest_one(p, "vitals/b", payload("b", 0, 70.0, 0.0), T0 + 6)
    assert [(e.patient_id, e.reason, e.vital, e.state) for e in events] == [
        ("b", "artifact", "spo2", "raised"),
        ("b", "patient_refused", None, "raised"),
        (None, "patients_refused", None, "raised"),
    ]
    # A second refused id, past the tracked ones: counted, no alert of its own.
    events = ingest_one(p, "vitals/c", payload("c", 0, 70.0, 0.0), T0 + 6)
    assert [e for e in events if e.patient_id == "c"] == []
    feed(p, "a", [71.0, 70.0, 72.0, 71.0, 70.0, 71.0], start=6)
    ended = p.housekeeping(T0 + 12)
    assert ("b", "artifact", "expired") in [(e.patient_id, e.reason, e.state) for e in ended]
    assert "b" not in p.alarms.by_patient
    assert "c" not in p.alarms.by_patient
    counted = p.metrics.registry.get_sample_value(
        "monitor_artifact_values_total", {"vital": "spo2"}
    )
    assert counted == 2


def test_a_large_residual_raises_a_physiological_alert_on_its_vital() -> None:
    """A sample 30 sigma from its prediction raises a high alert on that vital only."""
    p = make()
    rng = np.random.default_rng(2)
    feed(p, "d", list(70 + rng.standard_normal(5) * 0.5))
    score_all(p)
    feed(p, "d", [100.0], start=5)
    events = [e for e in score_all(p) if e.kind == "physiological"]
    assert [(e.patient_id, e.vital, e.state, e.severity, e.seq) for e in events] == [
        ("d", "heart_rate", "raised", "high", 5)
    ]


def test_a_vital_is_not_judged_while_its_window_holds_a_stuck_stretch() -> None:
    """After a stuck sensor recovers, the window still holds the stuck value for `window`
    samples: large residuals of that vital raise no physiological alert until it has left
    the window; the other vital is judged as usual; afterwards the vital is judged again."""
    p = make()
    rng = np.random.default_rng(3)
    feed(p, "e", list(70 + rng.standard_normal(6) * 0.5))
    score_all(p)
    feed(p, "e", [71.5] * 5, start=6)  # seq 6..10 stuck: flatline raised at seq 10
    score_all(p)
    # Recovery at 100 bpm: 30 sigma from a prediction of 71.5, yet untrusted until the last
    # stuck sample (seq 10) is more than window (4) samples old, i.e. through seq 14.
    events = feed(p, "e", [100.0, 100.2, 99.8, 100.1], start=11)
    events += score_all(p, predictor=71.5)
    assert [e for e in events if e.kind == "physiological"] == []
    feed(p, "e", [100.0, 100.3], start=15)
    later = [e for e in score_all(p, predictor=71.5) if e.kind == "physiological"]
    assert [(e.vital, e.state, e.seq) for e in later] == [("heart_rate", "raised", 15)]
    # A noisy SpO2 beside the stuck heart rate: a 30-sigma SpO2 residual raises at once.
    p2 = make()
    hr = list(70 + rng.standard_normal(6) * 0.5) + [71.5] * 6
    spo2 = [*(97 + rng.standard_normal(11) * 0.3), 80.0]
    for seq, (h, s) in enumerate(zip(hr, spo2, strict=True)):
        ingest_one(p2, "vitals/f", payload("f", seq, h, spo2=s), T0 + seq)
        if seq < 11 and len(p2.batcher):
            score_all(p2)
    jobs = p2.take_batch()
    preds = np.array([[71.5, 97.0]], dtype=np.float32)
    spo2 = [e for e in p2.score(jobs, preds, T0 + 12, live=False) if e.kind == "physiological"]
    assert [(e.vital, e.state, e.seq) for e in spo2] == [("spo2", "raised", 11)]


def test_failed_forwards_hold_one_system_alert_until_forwards_pass_for_stale_s() -> None:
    """Forwards that raise: their samples end `failed`; the first raises `inference_failed`
    (technical, high, system-wide: no patient id) once, however many follow. It clears at
    the first batch scored `stale_s` (8 s) or more after the last failure: a batch scored
    sooner, between intermittent failures, keeps it open (no raise/clear flapping). A later
    failure raises it again."""
    p = make()
    assert p.stale_s == 8.0
    rng = np.random.default_rng(0)
    feed(p, "a", list(70 + rng.standard_normal(24)))

    def failed(at: float) -> list[tuple[str | None, str]]:
        return [(e.reason, e.state) for e in p.inference_failed(p.take_batch(2), T0 + at)]

    def scored(at: float) -> list[tuple[str | None, str]]:
        jobs = p.take_batch(2)
        preds = np.stack([j.context[-1] for j in jobs]).astype(np.float32)
        events = p.score(jobs, preds, T0 + at, live=False)
        return [(e.reason, e.state) for e in events if e.reason == "inference_failed"]

    raised = p.inference_failed(p.take_batch(2), T0 + 20)
    assert [(e.kind, e.reason, e.state, e.severity, e.patient_id, e.t) for e in raised] == [
        ("technical", "inference_failed", "raised", "high", None, T0 + 20)
    ]
    assert failed(21) == []
    assert scored(25) == []  # 4 s after the last failure: still open
    assert failed(27) == []
    assert scored(34) == []  # 7 s after the last failure
    assert p.inference_failing
    assert scored(35) == [("inference_failed", "cleared")]
    assert not p.inference_failing
    assert scored(36) == []
    assert failed(40) == [("inference_failed", "raised")]
    assert outcomes(p)["failed"] == 8
    assert outcomes(p)["scored"] == 8
    count = p.metrics.registry.get_sample_value
    assert count("monitor_technical_alerts_total", {"reason": "inference_failed"}) == 2.0


def test_a_stalled_forward_holds_one_system_alert_and_its_gauge() -> None:
    """The live shell's stall check: `inference_stalled` (technical, high, no patient) is
    raised when the check first finds a forward running too long, not again while it
    does, and cleared at the first check that finds none; the gauge follows."""
    p = make()
    gauge = p.metrics.registry.get_sample_value

    def check(stalled: bool, at: float) -> list[tuple[object, ...]]:
        events = p.inference_stalled(stalled, T0 + at)
        return [(e.kind, e.reason, e.state, e.severity, e.patient_id, e.t) for e in events]

    assert check(False, 1) == []
    assert check(True, 2) == [("technical", "inference_stalled", "raised", "high", None, T0 + 2)]
    assert p.stalled
    assert gauge("monitor_inference_stalled") == 1.0
    assert check(True, 3) == []
    assert check(False, 4) == [("technical", "inference_stalled", "cleared", "high", None, T0 + 4)]
    assert not p.stalled
    assert gauge("monitor_inference_stalled") == 0.0
    assert gauge("monitor_technical_alerts_total", {"reason": "inference_stalled"}) == 1.0


def test_a_masked_model_scores_the_vitals_a_device_sends() -> None:
    """With an observed mask a patient sending only heart rate is scored on heart rate:
    every sample after warm-up is scored, SpO2 is never judged and never alerts, and a
    large heart-rate residual still raises."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    p = Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))
    rng = np.random.default_rng(4)
    for seq, hr in enumerate([*(70 + rng.standard_normal(8) * 0.5), 100.0]):
        body = {"v": 1, "patient_id": "m", "t": T0 + seq, "seq": seq, "vitals": {"heart_rate": hr}}
        assert ingest_one(p, "vitals/m", json.dumps(body).encode(), T0 + seq) == []
    jobs = p.take_batch()
    windows = p.stack(jobs)
    assert windows.shape == (5, 4, 4)  # values then observed flags
    assert np.isnan(windows[:, :, 1]).all()
    assert (windows[:, :, 3] == 0).all()
    preds = np.stack([w[-1, :2] for w in windows]).astype(np.float32)  # persistence, NaN SpO2
    events = p.score(jobs, preds, T0 + 100, live=False)
    assert [(e.vital, e.state, e.seq) for e in events if e.kind == "physiological"] == [
        ("heart_rate", "raised", 8)
    ]
    assert outcomes(p) == {"warming_up": 4, "scored": 5}
    count = p.metrics.registry.get_sample_value
    assert count("monitor_prediction_error_count", {"vital": "spo2"}) == 0.0
    assert count("monitor_prediction_error_count", {"vital": "heart_rate"}) == 5.0


def test_a_nan_vital_is_its_artifact_and_the_others_are_scored() -> None:
    """A masked model; a gateway writes SpO2 as NaN (as Python's json writes a failed
    reading) in samples 6 to 8, then Infinity in 9: one `artifact` technical alert on spo2,
    counted per sample, open while the samples show it and cleared by the first finite
    SpO2; every sample is still taken and scored on its heart rate. Before, `non_finite`
    refused each of these messages whole, heart rate and all."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    p = Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))
    events: list[AlertEvent] = []
    for seq in range(14):
        spo2 = float("nan") if 6 <= seq <= 8 else float("inf") if seq == 9 else 97.0 - seq % 3 / 10
        vitals = {"heart_rate": 70.0 + seq % 3 / 10, "spo2": spo2}
        body = {"v": 1, "patient_id": "g", "t": T0 + seq, "seq": seq, "vitals": vitals}
        events += ingest_one(p, "vitals/g", json.dumps(body).encode(), T0 + seq)
        if len(p.batcher):
            events += score_all(p)
    assert [(e.kind, e.reason, e.vital, e.state, e.seq) for e in events] == [
        ("technical", "artifact", "spo2", "raised", None),
        ("technical", "artifact", "spo2", "cleared", None),
    ]
    assert [e.t - T0 for e in events] == [6.0, 10.0]
    assert outcomes(p) == {"warming_up": 4, "scored": 10}
    count = p.metrics.registry.get_sample_value
    assert count("monitor_artifact_values_total", {"vital": "spo2"}) == 4.0
    assert count("monitor_invalid_messages_total", {"reason": "non_finite"}) == 0.0
    assert count("monitor_prediction_error_count", {"vital": "heart_rate"}) == 10.0
    assert count("monitor_prediction_error_count", {"vital": "spo2"}) == 6.0


@pytest.mark.parametrize("intervals", [4.0, None])
def test_a_vital_that_stops_arriving_raises_vital_lost_until_it_returns(
    intervals: float | None,
) -> None:
    """A masked model: SpO2 stops at 20 s while the heart rate goes on. `vital_lost` on
    spo2 (medium) is raised once at the first sample more than `stale_after_s` (8 s) after
    its last value, counted, and cleared by its return; meanwhile every sample is scored on
    heart rate. `window.vital_lost_intervals` null turns it off."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    settings = Settings.model_validate({"window": {"vital_lost_intervals": intervals}})
    p = Pipeline(info, settings, Metrics.create(CollectorRegistry()))
    events: list[AlertEvent] = []
    for seq in range(60):
        vitals = {"heart_rate": 70.0 + seq % 3}
        if seq < 20 or seq >= 50:
            vitals["spo2"] = 97.0 + seq % 2
        body = {"v": 1, "patient_id": "e", "t": T0 + seq, "seq": seq, "vitals": vitals}
        events += ingest_one(p, "vitals/e", json.dumps(body).encode(), T0 + seq)
        if len(p.batcher):
            events += score_all(p)
    lost = [(e.vital, e.state, e.severity, e.t - T0) for e in events if e.reason == "vital_lost"]
    count = p.metrics.registry.get_sample_value
    if intervals is None:
        assert lost == []
    else:
        assert lost == [("spo2", "raised", "medium", 28.0), ("spo2", "cleared", "medium", 50.0)]
        assert count("monitor_technical_alerts_total", {"reason": "vital_lost"}) == 1.0
    assert outcomes(p) == {"warming_up": 4, "scored": 56}


@pytest.mark.parametrize(
    ("intervals", "back_at", "raised"),
    [(4.0, 85.0, False), (None, 85.0, True), (4.0, 55.0, True)],
)
def test_a_vital_back_from_being_lost_is_judged_on_a_wider_scale(
    intervals: float | None, back_at: float, raised: bool
) -> None:
    """A masked model predicting the last value: SpO2 lost from 20 s, back at 50 s 12
    points lower (about 9 of its residual scale off the value carried since 19 s), then
    steady. Its first value spans 31 of its own 1 s intervals: z divided by 5, no
    physiological alert; with `vital_lost_intervals` null, as before, raised at once.
    Back 42 points lower it is still raised at once."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    settings = Settings.model_validate({"window": {"vital_lost_intervals": intervals}})
    p = Pipeline(info, settings, Metrics.create(CollectorRegistry()))
    events: list[AlertEvent] = []
    noise = np.random.default_rng(3).normal(0.0, 0.35, 80).round(2)
    for seq in range(80):
        vitals = {"heart_rate": 70.0 + seq % 3}
        if seq < 20:
            vitals["spo2"] = 97.0 + noise[seq]
        elif seq >= 50:
            vitals["spo2"] = back_at + noise[seq]
        body = {"v": 1, "patient_id": "e", "t": T0 + seq, "seq": seq, "vitals": vitals}
        events += ingest_one(p, "vitals/e", json.dumps(body).encode(), T0 + seq)
        if len(p.batcher):
            events += score_all(p)
    spo2 = [(e.state, e.t - T0) for e in events if e.kind == "physiological" and e.vital == "spo2"]
    assert spo2[:1] == ([("raised", 50.0)] if raised else [])


def test_a_slower_vital_stuck_on_one_value_raises_one_flatline() -> None:
    """A masked model; SpO2 sent in every other sample sticks at 95.0 from seq 20 to 40:
    one `flatline` on spo2, raised at its fifth equal value (seq 28), open between its
    samples (no raise/clear flapping) and cleared by its first different value (seq 42).
    Before, a vital not sent in each sample of a run was never checked."""
    info = ModelInfo(FEATURES, 12, np.array([1.0, 0.5]), "v-test", observed_mask=True)
    p = Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))
    events: list[AlertEvent] = []
    for seq in range(60):
        vitals = {"heart_rate": 70.0 + seq % 3}
        if seq % 2 == 0:
            vitals["spo2"] = 95.0 if 20 <= seq <= 40 else 96.0 + (seq % 4) / 2
        body = {"v": 1, "patient_id": "s", "t": T0 + seq, "seq": seq, "vitals": vitals}
        events += ingest_one(p, "vitals/s", json.dumps(body).encode(), T0 + seq)
        if len(p.batcher):
            events += score_all(p)
    flat = [(e.vital, e.state, e.t - T0) for e in events if e.reason == "flatline"]
    assert flat == [("spo2", "raised", 28.0), ("spo2", "cleared", 42.0)]


def test_one_patient_table_holds_the_windows_and_the_scoring_state() -> None:
    """The window store admits into the pipeline's one table and the scoring side uses the
    same slot; an evicted patient's slot, given to a newcomer, starts clean everywhere."""
    p = make(window={"max_patients": 2, "idle_ttl_s": 5.0})
    rng = np.random.default_rng(3)
    feed(p, "a", list(70 + rng.standard_normal(6)))
    score_all(p, predictor=200.0)  # far off: "a" has raised alerts
    slot = p.patients.get("a")
    assert slot is not None
    assert p.windows.table is p.patients
    assert p.scale._rows.slot_of("a") == slot
    assert p.detector.active("a") == ["heart_rate"]
    # "a" goes silent past the TTL: evicted, its slot freed and its alerts gone.
    p.housekeeping(T0 + 100)
    assert "a" not in p.patients
    assert len(p.patients) == 0
    assert p.detector.active("a") == []
    feed(p, "b", list(70 + rng.standard_normal(6)), start=200)
    assert p.patients.get("b") == slot
    score_all(p)
    assert p.detector.active("b") == []
    assert p.scale.sigma("b") is not None


def test_a_sample_whose_patient_was_evicted_in_flight_is_dropped_and_counted() -> None:
    """A job queued before its patient's eviction is not scored against a slot nobody
    holds: it ends as `dropped` (reason `evicted`), and every sample has one outcome."""
    p = make(window={"idle_ttl_s": 5.0})
    feed(p, "a", [70.0, 71.0, 72.0, 73.0, 74.0, 75.0])
    feed(p, "b", [60.0, 61.0, 62.0, 63.0, 64.0], start=90)
    jobs = p.take_batch()
    assert [j.patient_id for j in jobs] == ["a", "a", "b"]
    p.housekeeping(T0 + 96)  # "a" silent for 91 s: evicted while its jobs wait
    assert "a" not in p.patients
    preds = np.stack([j.context[-1] for j in jobs]).astype(np.float32)
    p.score(jobs, preds, T0 + 96, live=False)
    assert outcomes(p) == {"warming_up": 8, "scored": 1, "dropped": 2}
    dropped = p.metrics.registry.get_sample_value(
        "monitor_dropped_messages_total", {"reason": "evicted"}
    )
    assert dropped == 2
    assert len(p.scale) == 1  # only "b" holds scoring state


def test_a_slow_streams_rows_follow_and_a_one_hertz_stream_does_not() -> None:
    """With the model's 1 s period, a patient sending once a minute is a slow stream: its
    rows get the alarm follow (its gain rises on its heavy residuals); a 1 Hz patient with
    the same residuals keeps gain 1 (its rows are never followed)."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", sample_period_s=1.0)
    p = Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))
    rng = np.random.default_rng(4)
    for seq in range(12):
        for pid, step in (("fast", 1.0), ("slow", 60.0)):
            t = T0 + step * seq
            vitals = {"heart_rate": 70 + 40 * (seq % 2), "spo2": 97.0 + rng.normal()}
            body = {"v": 1, "patient_id": pid, "t": t, "seq": seq, "vitals": vitals}
            ingest_one(p, f"vitals/{pid}", json.dumps(body).encode(), t)
        jobs = p.take_batch()
        if jobs:
            preds = np.stack([j.context[-1] for j in jobs]).astype(np.float32)
            p.score(jobs, preds, T0 + 1000, live=False)
    follow = p.scorer.follow
    assert follow is not None
    slow, fast = follow.gain("slow"), follow.gain("fast")
    assert slow is not None
    assert slow[0] > 1.0
    assert fast is None or fast.tolist() == [1.0, 1.0]
    assert outcomes(p)["scored"] == 16  # 8 each after the 4-sample windows


def waveform_events(
    info: ModelInfo, settings: Settings, t: np.ndarray, columns: dict[str, np.ndarray]
) -> list[AlertEvent]:
    """One patient's waveform samples (a column per signal, at times T0 + t) through a
    pipeline, scored in batches of 256 against "next = last"; its alert events."""
    p = Pipeline(info, settings, Metrics.create(CollectorRegistry()))
    events: list[AlertEvent] = []
    rows = np.column_stack(list(columns.values())).tolist()
    for seq, (ti, row) in enumerate(zip((T0 + t).tolist(), rows, strict=True)):
        body = {"v": 1, "patient_id": "e", "t": ti, "seq": seq,
                "vitals": dict(zip(columns, row, strict=True))}  # fmt: skip
        ingest_one(p, "vitals/e", json.dumps(body).encode(), ti)
        if len(p.batcher) >= 256 or seq == t.size - 1:
            events += score_all(p)
    return events


def test_a_premature_beat_on_a_beat_waveform_raises_and_without_rhythm_nothing_does() -> None:
    """A 360 Hz ECG-like signal with one beat 30 % early, scored against "next = last" with
    a residual sigma too wide for any z rule: the card's `rhythm` makes that beat one
    `premature` raise on the ECG, at the sample that confirms it; without it, silence."""
    ecg_mv = Vital("ecg_mv", "mV", -5.0, 5.0, "ECG", PERIOD)
    t, x, early = ecg(25.0, early=(15.0,))
    raised = {}
    for rhythm in (("ecg_mv",), ()):
        info = ModelInfo(
            ("ecg_mv",), 4, np.array([50.0]), "v-test", sample_period_s=PERIOD,
            signals=Registry([ecg_mv]), rhythm=rhythm,
        )  # fmt: skip
        events = waveform_events(info, Settings(), t, {"ecg_mv": x})
        raised[rhythm] = [e for e in events if e.state == "raised"]
    (alert,) = raised[("ecg_mv",)]
    assert alert.reason == "premature"
    assert alert.vital == "ecg_mv"
    assert 0.0 <= alert.t - (T0 + early[0]) <= 0.1
    assert raised[()] == []


def test_a_heart_that_stops_raises_asystole_unless_a_pulse_wave_still_beats() -> None:
    """A 360 Hz ECG whose beats stop for 10 s (noise only), scored against "next = last"
    with a residual sigma too wide for any z rule: one `asystole` raise, high, 4 s after
    the last beat, cleared after the beats return. With a pleth that goes on beating
    beside it, no raise at all (a lead's fault, not the heart's); with `asystole_s` off,
    none either: no residual rule sees a heart that stopped."""
    ecg_mv = Vital("ecg_mv", "mV", -5.0, 5.0, "ECG", PERIOD)
    pleth = Vital("pleth_nu", "NU", -5.0, 5.0, "pleth", PERIOD)
    stop, back = 15.0, 25.0
    t, lead = ecg_at(beats_every(0.8, 0.3, stop) + beats_every(0.8, back, 30.0), 30.0)
    _, pulse = ecg_at(beats_every(0.8, 0.5, 30.0), 30.0, seed=3)
    raised = {}
    off = Settings(detector=DetectorConfig(asystole_s=None))
    for names, settings in (
        (("ecg_mv",), Settings()),
        (("ecg_mv", "pleth_nu"), Settings()),
        (("ecg_mv",), off),
    ):
        info = ModelInfo(
            names, 4, np.full(len(names), 50.0), "v-test", sample_period_s=PERIOD,
            signals=Registry([ecg_mv, pleth]), rhythm=names,
        )  # fmt: skip
        columns = {"ecg_mv": lead, "pleth_nu": pulse}
        events = waveform_events(info, settings, t, {n: columns[n] for n in names})
        raised[names, settings is off] = [e for e in events if e.kind == "physiological"]
    raise_, clear = raised[("ecg_mv",), False]
    last = max(b for b in beats_every(0.8, 0.3, stop))
    assert (raise_.state, raise_.reason, raise_.severity, raise_.vital) == (
        "raised",
        "asystole",
        "high",
        "ecg_mv",
    )
    assert last + 3.9 <= raise_.t - T0 <= last + 4.05
    assert clear.state == "cleared"
    assert back < clear.t - T0 < back + 3.0
    assert raised[("ecg_mv", "pleth_nu"), False] == []
    assert raised[("ecg_mv",), True] == []


def test_in_atrial_fibrillation_a_wide_beat_raises_beat_shape_and_timing_says_nothing() -> None:
    """A 360 Hz ECG in an irregular rhythm (intervals 0.45 to 1.15 s) with one wide beat,
    scored against "next = last" with a residual sigma too wide for any z rule. Judged by
    shape (the card's `ectopy` "shape"): one `beat_shape` raise, at the wide beat, 0.15 s
    after its start. Judged by timing, as a regular rhythm is: `premature` raises on the
    ordinary beats of the irregular rhythm (noise to a clinician)."""
    ecg_mv = Vital("ecg_mv", "mV", -5.0, 5.0, "ECG", PERIOD)
    rr = np.random.default_rng(7).uniform(0.45, 1.15, 45)
    beats = (0.3 + np.concatenate([[0.0], np.cumsum(rr)])).tolist()
    wide = 30
    t, x = ecg_at(beats, beats[-1] + 0.5, wide=frozenset({wide}))
    raised = {}
    for shaped in (("ecg_mv",), ()):
        info = ModelInfo(
            ("ecg_mv",), 4, np.array([50.0]), "v-test", sample_period_s=PERIOD,
            signals=Registry([ecg_mv]), rhythm=("ecg_mv",), shaped=shaped,
        )  # fmt: skip
        events = waveform_events(info, Settings(), t, {"ecg_mv": x})
        raised[shaped] = [e for e in events if e.state == "raised"]
    (alert,) = raised[("ecg_mv",)]
    assert (alert.reason, alert.vital) == ("beat_shape", "ecg_mv")
    assert 0.1 <= alert.t - (T0 + beats[wide]) <= 0.2
    timing = raised[()]
    assert len(timing) >= 3
    assert {e.reason for e in timing} == {"premature"}


def test_a_sample_after_a_silence_is_judged_against_the_time_it_spans() -> None:
    """After a 9 s silence of a 1 Hz stream (8 samples missing, within the gap limit) the
    sample's job carries gap 9, and its z is a third of what the same residual gives a
    steady sample (the scale widened by sqrt(9)); a gap under 2 changes nothing. The
    patient's next samples settle: their divisor falls from 3 to 1 over
    `GAP_SETTLE_VALUES`."""
    info = ModelInfo(FEATURES, 4, np.array([1.0, 0.5]), "v-test", sample_period_s=1.0)
    p = Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))
    times = [T0 + i for i in range(6)] + [T0 + 14.0]
    for seq, ti in enumerate(times):
        body = {"v": 1, "patient_id": "g", "t": ti, "seq": seq, "vitals": {"heart_rate": 70.0}}
        body["vitals"]["spo2"] = 97.0 + 0.1 * seq
        ingest_one(p, "vitals/g", json.dumps(body).encode(), ti)
    jobs = p.take_batch()
    assert [round(j.gap, 6) for j in jobs] == [1.0, 1.0, 9.0]
    scorer = p.scorer
    windows = np.zeros((3, 4, 2), dtype=np.float32)
    actual = np.array([[75.0, 97.0]] * 3)
    predictions = np.array([[70.0, 97.0]] * 3, dtype=np.float32)
    gaps = np.array([1.0, 1.9, 9.0])
    scored = scorer.score(
        ["x", "y", "z"], windows, actual, predictions, [T0] * 3, [1] * 3, gap=gaps
    )
    z = scored.absz[:, 0]
    assert z[1] == pytest.approx(z[0])
    assert z[2] == pytest.approx(z[0] / 3.0)
    # "x" (steady) and "z" (after the silence) go on with the same residuals.
    after = [
        scorer.score(["x", "z"], windows[:2], actual[:2], predictions[:2], [T0] * 2,
                     [2 + k] * 2, gap=np.ones(2)).absz[:, 0]
        for k in range(GAP_SETTLE_VALUES + 1)
    ]  # fmt: skip
    divisors = [float(a[0] / a[1]) for a in after]
    k = np.arange(1, GAP_SETTLE_VALUES + 2)
    expected = 1.0 + 2.0 * np.clip(1.0 - k / GAP_SETTLE_VALUES, 0.0, 1.0)
    np.testing.assert_allclose(divisors, expected, rtol=1e-9)
    assert divisors[-2:] == [1.0, 1.0]


def test_the_pipeline_names_how_each_beat_waveform_tells_its_ectopic_beats() -> None:
    """`Pipeline.rhythm` (printed by `replay --offline` and `evaluate`): a timing waveform
    reads its premature share, a shape one its `beat_shape` level, one judged neither way
    (an irregular pulse wave) is not named; a model without beat waveforms names none."""
    ecg_mv = Vital("ecg_mv", "mV", -5.0, 5.0, "ECG", PERIOD)
    pleth = Vital("pleth_nu", "NU", -5.0, 5.0, "pleth", PERIOD)
    names = ("ecg_mv", "pleth_nu")

    def rhythm(shaped: tuple[str, ...], timed: tuple[str, ...] | None) -> dict[str, str]:
        info = ModelInfo(
            names, 4, np.full(2, 50.0), "v-test", sample_period_s=PERIOD,
            signals=Registry([ecg_mv, pleth]), rhythm=names, shaped=shaped, timed=timed,
        )  # fmt: skip
        return Pipeline(info, Settings(), Metrics.create(CollectorRegistry())).rhythm()

    assert rhythm((), None) == {"ecg_mv": "20% early", "pleth_nu": "20% early"}
    assert rhythm(("ecg_mv",), ()) == {"ecg_mv": "shape over 0.50"}
    assert rhythm((), ()) == {}
    plain = ModelInfo(("ecg_mv",), 4, np.array([50.0]), "v-test", sample_period_s=PERIOD,
                      signals=Registry([ecg_mv]))  # fmt: skip
    assert Pipeline(plain, Settings(), Metrics.create(CollectorRegistry())).rhythm() == {}
