"""The snapshot file: a pipeline restored from it scores on as the uninterrupted one, and an
unusable file is refused with one log line and a cold start."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import structlog
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent
from monitor.core.rhythm import BeatRhythm
from monitor.core.settle import GAP_SETTLE_VALUES
from monitor.core.vitals import CLINICAL_VITALS, Registry, Vital
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.service.metrics import Metrics
from monitor.service.snapshot import restore_on_start, save_on_stop
from monitor.settings import Settings
from tests.support.ecg import PERIOD, beats_every, ecg_at
from tests.support.ingest import ingest_one

WINDOW = 8
NORMAL = [75.0, 97.0, 16.0, 120.0, 80.0, 37.0]
SIGMA = [5.0, 1.0, 2.0, 8.0, 6.0, 0.3]
T0 = 1_800_000_000.0


def make_pipeline(
    version: str = "v1", window: int = WINDOW, max_patients: int = 100, **model_info: Any
) -> Pipeline:
    """A pipeline over the clinical vitals with a fresh registry (`model_info`: more
    `ModelInfo` fields)."""
    model = ModelInfo(
        features=CLINICAL_VITALS,
        window=window,
        residual_sigma=np.asarray(SIGMA),
        version=version,
        **model_info,
    )
    settings = Settings(window={"max_patients": max_patients})
    return Pipeline(model, settings, Metrics.create(CollectorRegistry()))


def sample(pid: str, seq: int) -> bytes:
    """A noisy normal sample, with a large heart-rate step on some (to raise alerts). The
    same in every process (`hash` of a str is not), and plausible: SpO2 97 + 3 sigma would
    pass 100 %, an artifact that refuses the sample (one run in about 80 did)."""
    rng = np.random.default_rng([int(pid.removeprefix("p")), seq])
    values = np.asarray(NORMAL) + rng.normal(size=6) * np.asarray(SIGMA)
    values[1] = min(values[1], 100.0)
    if seq % 37 in (20, 21, 22):
        values[0] += 60.0
    vitals = dict(zip(CLINICAL_VITALS, values.round(3).tolist(), strict=True))
    body = {"v": 1, "patient_id": pid, "t": T0 + seq, "seq": seq, "vitals": vitals}
    return json.dumps(body).encode()


def step(pipeline: Pipeline, patients: list[str], seq: int) -> list[AlertEvent]:
    """One second: a sample per patient, then every ready window scored (persistence model)."""
    now = T0 + seq
    events: list[AlertEvent] = []
    for pid in patients:
        events += ingest_one(pipeline, f"vitals/{pid}", sample(pid, seq), now)
    jobs = pipeline.take_batch()
    if jobs:
        predictions = np.stack([j.context[-1, :6] for j in jobs]).astype(np.float32)
        events += pipeline.score(jobs, predictions, now, live=False)
    return events


def outcome(pipeline: Pipeline, name: str) -> float:
    """One `monitor_messages_total` outcome's count."""
    value = pipeline.metrics.registry.get_sample_value("monitor_messages_total", {"outcome": name})
    return 0.0 if value is None else value


def restore(
    pipeline: Pipeline, path: Path, max_age_s: float = 300.0, now: float = T0 + 100
) -> list[dict[str, Any]]:
    """`restore_on_start` at `now`, returning its log lines."""
    with structlog.testing.capture_logs() as logs:
        restore_on_start(path, pipeline, max_age_s, clock=lambda: now)
    return logs


def test_restored_pipeline_scores_on_as_the_uninterrupted_one(tmp_path: Path) -> None:
    """After a save and restore, the first sample of every patient is scored (not warming
    up) and every later alert matches the uninterrupted pipeline's, event for event."""
    patients = [f"p{i}" for i in range(5)]
    path = tmp_path / "patients.snapshot"
    original = make_pipeline()
    for seq in range(1, 60):
        # p3 joins later (full window by now), p4 four samples before the save (warming up).
        step(original, patients[: 3 + (seq >= 30) + (seq >= 56)], seq)
    with structlog.testing.capture_logs() as logs:
        save_on_stop(path, original, clock=lambda: T0 + 60)
    assert [entry["event"] for entry in logs] == ["snapshot_written"]
    restored = make_pipeline()
    logs = restore(restored, path)
    assert [(e["event"], e["patients"]) for e in logs] == [("snapshot_restored", 5)]
    assert not path.exists()  # consumed: a later crash cannot restore it again
    first = step(restored, patients, 60)
    assert outcome(restored, "scored") == 4  # p0..p3 at once; p4 had < WINDOW samples
    assert outcome(restored, "warming_up") == 1
    assert first == step(original, patients, 60)
    later_original, later_restored = [], []
    for seq in range(61, 160):
        later_original += step(original, patients, seq)
        later_restored += step(restored, patients, seq)
    assert later_restored == later_original
    assert any(e.kind == "physiological" for e in later_original)


def test_without_a_snapshot_the_first_samples_warm_up(tmp_path: Path) -> None:
    """The cold start the snapshot avoids: no file, no log line, every sample warms up."""
    cold = make_pipeline()
    assert restore(cold, tmp_path / "absent.snapshot") == []
    step(cold, ["p0"], 60)
    assert outcome(cold, "warming_up") == 1
    assert outcome(cold, "scored") == 0


def _saved(tmp_path: Path) -> Path:
    path = tmp_path / "patients.snapshot"
    original = make_pipeline()
    for seq in range(1, 20):
        step(original, ["p0", "p1"], seq)
    save_on_stop(path, original, clock=lambda: T0 + 20)
    return path


def _flip_last_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[:-100])


def _garbage(path: Path) -> None:
    path.write_bytes(b"\x00\x01not a snapshot at all")


@pytest.mark.parametrize(
    ("damage", "reason"),
    [(_flip_last_byte, "corrupt"), (_truncate, "corrupt"), (_garbage, "corrupt")],
)
def test_damaged_snapshot_is_refused_with_one_line_and_a_cold_start(
    tmp_path: Path, damage: Any, reason: str
) -> None:
    """A flipped byte, a truncated file or garbage: one snapshot_refused line, no patient."""
    path = _saved(tmp_path)
    damage(path)
    cold = make_pipeline()
    logs = restore(cold, path)
    assert [(e["event"], e["reason"]) for e in logs] == [("snapshot_refused", reason)]
    assert len(cold.windows) == len(cold.scale) == len(cold.detector) == 0
    step(cold, ["p0"], 20)
    assert outcome(cold, "warming_up") == 1


@pytest.mark.parametrize(
    ("pipeline", "now", "reason"),
    [
        (lambda: make_pipeline(version="v2"), T0 + 20 + 301, "too_old"),  # max_age_s 300
        (make_pipeline, T0 + 20 + 301, "too_old"),
    ],
)
def test_an_old_snapshot_is_refused_whatever_its_model(
    tmp_path: Path, pipeline: Any, now: float, reason: str
) -> None:
    """An old file, of this model or another: refused, one line, cold."""
    path = _saved(tmp_path)
    cold = pipeline()
    logs = restore(cold, path, now=now)
    assert [(e["event"], e["reason"]) for e in logs] == [("snapshot_refused", reason)]
    assert len(cold.windows) == 0
    assert not path.exists()


@pytest.mark.parametrize(
    ("pipeline", "reason"),
    [
        (lambda: make_pipeline(version="v2"), "model_version"),
        (lambda: make_pipeline(window=WINDOW + 1), "window"),
    ],
)
def test_a_snapshot_of_another_model_restores_its_roster(
    tmp_path: Path, pipeline: Any, reason: str
) -> None:
    """A recent file written while serving another model (a new model installed, another
    window): its model state is refused (one line), but its patients are taken over (one
    `roster_restored` line): p0, whose device stays silent, gets `signal_lost` 8 s
    (stale_after_s, the time on disk not counted); p1, which sends, warms up again
    (`warming_up` until its window is full, then scored). Before (26c7766) the start was
    cold: p0 was never alerted."""
    path = _saved(tmp_path)  # written at T0 + 20, the last samples at T0 + 19
    restored = pipeline()
    logs = restore(restored, path, now=T0 + 25)
    assert [(e["event"], e.get("reason")) for e in logs] == [
        ("snapshot_refused", reason),
        ("roster_restored", None),
    ]
    assert logs[1]["patients"] == 2
    assert not path.exists()
    window = restored.windows.window
    events: list[AlertEvent] = []
    for seq in range(20, 20 + window + 2):
        events += step(restored, ["p1"], seq + 5)
        events += restored.housekeeping(T0 + seq + 5)
    changes = [(e.patient_id, e.reason, e.state, e.t - T0) for e in events if e.kind == "technical"]
    # p0 last heard at 19, 5 s on disk not counted: silent past 8 s at 33.
    assert sorted(changes, key=lambda c: (c[3], c[0])) == sorted(
        [
            ("p1", "warming_up", "raised", 25.0),
            ("p1", "warming_up", "cleared", 25.0 + window),
            ("p0", "signal_lost", "raised", 33.0),
        ],
        key=lambda c: (c[3], c[0]),
    )
    assert outcome(restored, "scored") == 2


def test_snapshot_that_does_not_fit_is_refused_whole(tmp_path: Path) -> None:
    """Two patients saved, room for one: refused as invalid_state, no patient restored in
    any component (never half a patient)."""
    path = _saved(tmp_path)
    small = make_pipeline(max_patients=1)
    logs = restore(small, path, now=T0 + 21)
    assert [(e["event"], e["reason"]) for e in logs] == [("snapshot_refused", "invalid_state")]
    assert len(small.windows) == len(small.scale) == len(small.detector) == 0


def test_time_on_disk_does_not_count_as_silence(tmp_path: Path) -> None:
    """Restored 100 s after the save (stale_after_s is 8 s): housekeeping right after the
    restart raises no signal_lost; 9 s later, still silent, it does."""
    path = _saved(tmp_path)  # written at T0 + 20, the last samples at T0 + 19
    restored = make_pipeline()
    restore(restored, path, now=T0 + 120)
    assert restored.housekeeping(T0 + 120) == []
    lost = restored.housekeeping(T0 + 129)
    assert sorted((e.patient_id, e.reason) for e in lost) == [
        ("p0", "signal_lost"),
        ("p1", "signal_lost"),
    ]


def test_failed_write_logs_one_line(tmp_path: Path) -> None:
    """A snapshot that cannot be written (its folder is a file) logs one
    snapshot_write_failed line and returns None (the shutdown goes on)."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    pipeline = make_pipeline()
    step(pipeline, ["p0"], 1)
    with structlog.testing.capture_logs() as logs:
        assert save_on_stop(blocker / "patients.snapshot", pipeline) is None
    assert [e["event"] for e in logs] == ["snapshot_write_failed"]
    assert blocker.read_text() == "x"


def test_alarm_follow_and_stuck_history_survive_a_restart(tmp_path: Path) -> None:
    """A model trained on a recording (clipped scale: the alarm follow is on) restores
    each patient's follow gain and its stuck-sensor history, and raises and clears as the
    uninterrupted pipeline does; a daemon without a follow ignores the follow's arrays."""

    def make() -> Pipeline:
        model = ModelInfo(
            features=CLINICAL_VITALS,
            window=WINDOW,
            residual_sigma=np.asarray(SIGMA),
            version="v1",
            residual_clip_at=6.0,
        )
        return Pipeline(model, Settings(), Metrics.create(CollectorRegistry()))

    def heavy(pipeline: Pipeline, seq: int) -> list[AlertEvent]:
        now = T0 + seq
        events: list[AlertEvent] = []
        for p in range(3):
            rng = np.random.default_rng(seq * 10 + p)
            values = np.asarray(NORMAL) + rng.standard_t(1.5, size=6) * np.asarray(SIGMA)
            if p == 1 and 50 <= seq <= 57:
                values[1] = 95.5  # a stuck SpO2 sensor
            vitals = dict(zip(CLINICAL_VITALS, values.round(3).tolist(), strict=True))
            body = {"v": 1, "patient_id": f"p{p}", "t": now, "seq": seq, "vitals": vitals}
            events += ingest_one(pipeline, f"vitals/p{p}", json.dumps(body).encode(), now)
        jobs = pipeline.take_batch()
        if jobs:
            predictions = np.stack([j.context[-1, :6] for j in jobs]).astype(np.float32)
            events += pipeline.score(jobs, predictions, now, live=False)
        return events

    original = make()
    for seq in range(1, 60):
        heavy(original, seq)
    follow, stuck = original.scorer.follow, original.scorer.stuck
    assert follow is not None
    gains = {f"p{p}": follow.gain(f"p{p}") for p in range(3)}
    assert any(g is not None and g.max() > 1.0 for g in gains.values())
    assert stuck.export_state()[0] == ["p1"]
    path = tmp_path / "patients.snapshot"
    save_on_stop(path, original, clock=lambda: T0 + 60)
    restored = make()
    restore(restored, path)
    restored_follow = restored.scorer.follow
    assert restored_follow is not None
    for pid, gain in gains.items():
        np.testing.assert_array_equal(restored_follow.gain(pid), gain)
    ids, arrays = restored.scorer.stuck.export_state()
    assert ids == ["p1"]
    np.testing.assert_array_equal(arrays["seq"], stuck.export_state()[1]["seq"])
    scored = 0
    for seq in range(60, 120):
        # Open technical alerts (artifacts of the heavy tail) are not saved (by design):
        # compare the alerts the restored state decides.
        got = [e for e in heavy(restored, seq) if e.kind == "physiological"]
        assert got == [e for e in heavy(original, seq) if e.kind == "physiological"]
        scored += len(got)
    assert scored > 0
    # A daemon with the follow turned off restores the rest and ignores the follow's arrays.
    save_on_stop(path, original, clock=lambda: T0 + 120)
    model = ModelInfo(
        features=CLINICAL_VITALS, window=WINDOW, residual_sigma=np.asarray(SIGMA), version="v1"
    )
    plain = Pipeline(
        model,
        Settings(detector={"follow_level": None}),
        Metrics.create(CollectorRegistry()),
    )
    assert plain.scorer.follow is None
    logs = restore(plain, path, now=T0 + 121)
    assert [(e["event"], e["patients"]) for e in logs] == [("snapshot_restored", 3)]


@pytest.mark.parametrize(("resume", "back"), [(27.0, 35.0), (60.0, 68.0)])
def test_an_asystole_alarm_stays_raised_across_a_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, resume: float, back: float
) -> None:
    """A 360 Hz ECG whose beats stop at 15 s: `asystole` is raised; the daemon stops at
    22 s (snapshot) and restarts, the stream resuming at `resume`, still flat: the alarm
    stays raised (the beat state was restored: the restart is a silence of the stream, not
    a heartbeat; one longer than `KEEP_HEARD_S` too, as the stream stopped in a silence)
    until the beats return at `back`. Restored without the beat state (a file of a daemon
    before it), the alarm clears within seconds of a flat line."""
    ecg_mv = Vital("ecg_mv", "mV", -5.0, 5.0, "ECG", PERIOD)
    model = ModelInfo(
        ("ecg_mv",), 4, np.array([50.0]), "v-ecg", sample_period_s=PERIOD,
        signals=Registry([ecg_mv]), rhythm=("ecg_mv",),
    )  # fmt: skip
    t, x = ecg_at(beats_every(0.8, 0.3, 15.0) + beats_every(0.8, back, back + 10.0), back + 10.0)

    def feed(p: Pipeline, part: np.ndarray) -> list[AlertEvent]:
        events: list[AlertEvent] = []
        rows = np.flatnonzero(part)
        for n, i in enumerate(rows.tolist()):
            ti = T0 + float(t[i])
            body = {"v": 1, "patient_id": "e", "t": ti, "seq": i, "vitals": {"ecg_mv": x[i]}}
            events += ingest_one(p, "vitals/e", json.dumps(body).encode(), ti)
            if len(p.batcher) >= 256 or n == rows.size - 1:
                jobs = p.take_batch()
                predictions = np.stack([j.context[-1, :1] for j in jobs]).astype(np.float32)
                events += p.score(jobs, predictions, ti, live=False)
        return [e for e in events if e.kind == "physiological"]

    before = Pipeline(model, Settings(), Metrics.create(CollectorRegistry()))
    raised = feed(before, t < 22.0)
    assert [(e.state, e.reason) for e in raised] == [("raised", "asystole")]
    path = tmp_path / "patients.snapshot"
    saved = BeatRhythm.export_state
    for keep_rhythm in (True, False):
        if not keep_rhythm:  # a file with no patient's beat state (as before it was kept)
            monkeypatch.setattr(
                BeatRhythm, "export_state", lambda self: ([], {k: v[:0] for k, v in
                                                               saved(self)[1].items()})
            )  # fmt: skip
        save_on_stop(path, before, clock=lambda: T0 + 22.0)
        after = Pipeline(model, Settings(), Metrics.create(CollectorRegistry()))
        assert [e["event"] for e in restore(after, path, now=T0 + resume)] == ["snapshot_restored"]
        resumed = feed(after, t >= resume)
        if keep_rhythm:
            (cleared,) = resumed
            assert cleared.state == "cleared"
            assert back < cleared.t - T0 < back + 3.0  # after the beats' return
        else:
            assert resumed[0].state == "cleared"
            assert resumed[0].t - T0 < resume + 3.0


def test_a_lost_vital_stays_raised_across_a_restart_and_clears_on_its_return(
    tmp_path: Path,
) -> None:
    """A masked model; SpO2 stops at 20 s and `vital_lost` is raised; the daemon stops at
    40 s (snapshot) and restarts. The open alert and the lost-vital state are both saved:
    the restored daemon neither raises it again nor forgets it, and clears it when SpO2
    comes back at 50 s. (Before open technical alerts were saved, it was raised a second
    time at the first sample after the restart, and its consumers' first raise never
    cleared.) A daemon started cold never saw SpO2, so it would never judge it."""

    def make() -> Pipeline:
        return make_pipeline(observed_mask=True)

    def run(pipeline: Pipeline, seqs: range) -> list[tuple[str | None, str, float]]:
        events: list[AlertEvent] = []
        for seq in seqs:
            vitals = {"heart_rate": 75.0 + seq % 3}
            if seq < 20 or seq >= 50:
                vitals["spo2"] = 97.0 + seq % 2
            body = {"v": 1, "patient_id": "p0", "t": T0 + seq, "seq": seq, "vitals": vitals}
            events += ingest_one(pipeline, "vitals/p0", json.dumps(body).encode(), T0 + seq)
            jobs = pipeline.take_batch()
            if jobs:
                predictions = np.stack([j.context[-1, :6] for j in jobs]).astype(np.float32)
                events += pipeline.score(jobs, predictions, T0 + seq, live=False)
        return [(e.vital, e.state, e.t - T0) for e in events if e.reason == "vital_lost"]

    original = make()
    assert run(original, range(40)) == [("spo2", "raised", 28.0)]
    path = tmp_path / "patients.snapshot"
    save_on_stop(path, original, clock=lambda: T0 + 40)
    restored = make()
    restore(restored, path, now=T0 + 45)
    assert restored.alarms.is_open("p0", "vital_lost", "spo2")
    assert run(restored, range(45, 52)) == [("spo2", "cleared", 50.0)]
    assert run(make(), range(45, 50)) == []


def test_a_settling_after_a_silence_goes_on_across_a_restart(tmp_path: Path) -> None:
    """p0 is silent for 6 s (seq 30 to 35, within the gap limit), so its next values settle;
    the daemon stops 4 samples later and restarts: the settling is restored (from sqrt(7),
    each vital 3 values after its first one back) and the restored daemon decides the same
    alerts as the uninterrupted one."""
    original = make_pipeline()
    for seq in range(1, 40):
        step(original, ["p0", "p1"] if not 30 <= seq <= 35 else ["p1"], seq)
    ids, arrays = original.scorer.settle.export_state()
    row = ids.index("p0")
    np.testing.assert_allclose(arrays["widen"][row], np.sqrt(7.0))
    assert arrays["settled"][row].tolist() == [3.0] * 6
    assert arrays["length"][row].tolist() == [float(GAP_SETTLE_VALUES)] * 6
    path = tmp_path / "patients.snapshot"
    save_on_stop(path, original, clock=lambda: T0 + 40)
    restored = make_pipeline()
    restore(restored, path, now=T0 + 40)
    got_ids, got = restored.scorer.settle.export_state()
    assert sorted(got_ids) == sorted(ids)
    np.testing.assert_array_equal(got["widen"][got_ids.index("p0")], arrays["widen"][row])
    for seq in range(40, 80):
        assert step(restored, ["p0", "p1"], seq) == step(original, ["p0", "p1"], seq)


def test_open_technical_alerts_are_taken_over_or_ended_by_a_restart(tmp_path: Path) -> None:
    """At the save p0 has `signal_lost` open (silent 10 s), q9 is refused (every message
    names an unknown signal: `patient_refused`, and `patients_refused` on the system) and
    a forward is stalled (`inference_stalled`). After the restart p0's alert is still open
    (not raised again while p0 stays silent) and its first sample clears it; the three
    alerts this process does not watch end `expired` at the restart, so that none stays
    open at its consumers forever. Before (26c7766) none was saved: p0's raise was
    never cleared and the other three stayed raised."""
    original = make_pipeline()
    for seq in range(1, 20):
        step(original, ["p0", "p1"] if seq < 10 else ["p1"], seq)
    assert [(e.patient_id, e.state) for e in original.housekeeping(T0 + 19)] == [("p0", "raised")]
    refused = {"v": 1, "patient_id": "q9", "t": T0 + 19, "seq": 1, "vitals": {"etco2": 35.0}}
    raised = ingest_one(original, "vitals/q9", json.dumps(refused).encode(), T0 + 19)
    assert sorted(e.reason or "" for e in raised) == ["patient_refused", "patients_refused"]
    assert [e.state for e in original.inference_stalled(True, T0 + 19)] == ["raised"]
    path = tmp_path / "patients.snapshot"
    save_on_stop(path, original, clock=lambda: T0 + 20)

    restored = make_pipeline()
    with structlog.testing.capture_logs() as logs:
        stats = restore_on_start(path, restored, 300.0, clock=lambda: T0 + 25)
    assert stats is not None
    ended = sorted((e.patient_id or "", e.reason, e.state) for e in stats.events)
    assert ended == [
        ("", "inference_stalled", "expired"),
        ("", "patients_refused", "expired"),
        ("q9", "patient_refused", "expired"),
    ]
    assert [(e["alerts_open"], e["alerts_expired"]) for e in logs] == [(1, 3)]
    assert restored.alarms.is_open("p0", "signal_lost")
    gauge = restored.metrics.registry.get_sample_value(
        "monitor_active_alerts", {"kind": "technical"}
    )
    assert gauge == 1
    assert restored.housekeeping(T0 + 30) == []  # p0 still silent: not raised twice
    back = step(restored, ["p0", "p1"], 31)
    assert [(e.patient_id, e.reason, e.state) for e in back if e.kind == "technical"] == [
        ("p0", "signal_lost", "cleared")
    ]


def test_a_snapshot_with_malformed_open_alerts_is_refused(tmp_path: Path) -> None:
    """The header's open alerts must be [id, reason, vital or null, time] lists."""
    path = _saved(tmp_path)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    head = json.loads(data[8 : 8 + n])
    header = json.loads(head["__metadata__"]["vitals_monitor_snapshot"])
    header["technical"] = [["p0", "signal_lost", None]]
    head["__metadata__"]["vitals_monitor_snapshot"] = json.dumps(header)
    raw = json.dumps(head).encode()
    raw += b" " * ((8 - len(raw) % 8) % 8)  # safetensors pads its header to 8 bytes
    path.write_bytes(len(raw).to_bytes(8, "little") + raw + data[8 + n :])
    cold = make_pipeline()
    logs = restore(cold, path, now=T0 + 21)
    assert [(e["event"], e["reason"]) for e in logs] == [("snapshot_refused", "corrupt")]
    assert "open alerts" in logs[0]["detail"]
    assert len(cold.windows) == 0
