"""A patient the daemon receives but cannot monitor is an alert (issue 16 item 3): the
patient cap, junk ids, and a patient whose every message is refused."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import NORMAL, WINDOW, outcomes_balance, payload, publisher
from tests.reliability.inprocess import counter, make_pipeline, persistence_predictions
from tests.reliability.test_delivery import publish_all, wait_until
from tests.support.daemon import Daemon, total
from tests.support.ingest import ingest_one
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

T0 = 1_764_000_000.0


def refused_events(alerts: Listener) -> list[tuple[str, str | None, str]]:
    """(topic's last level, reason, state) of the refused-patient alerts received so far."""
    out = []
    for topic, body in list(alerts.messages):
        event = json.loads(body)
        if event.get("reason") in ("patient_refused", "patients_refused"):
            out.append((topic.rpartition("/")[2], event["reason"], event["state"]))
    return out


@pytest.mark.mqtt
def test_ten_thousand_junk_ids_do_not_lock_out_a_real_patient(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    figure: Callable[[str, Any], None],
) -> None:
    """10,000 one-message ids fill a cap of 1,000 with patients that never warm up; a real
    patient arriving next is admitted (a never-warmed id makes room) and scored, and no
    sample is refused at the cap."""
    env = {"MONITOR_WINDOW__MAX_PATIENTS": "1000"}
    daemon = Daemon(mosquitto.url, model=model_dir, env=env)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    junk = [(f"vitals/j{i:05d}", payload(f"j{i:05d}", 0)) for i in range(10_000)]
    publish_all(mosquitto.port, junk)
    daemon.wait_for("monitor_received_total", 10_000, timeout=60)
    client = publisher(mosquitto.port)
    for seq in range(WINDOW + 4):
        client.publish("vitals/real1", payload("real1", seq), qos=1).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()
    scored = daemon.wait_for("monitor_messages_total", 4, outcome="scored", timeout=20)
    samples = daemon.metrics()
    figure("junk_ids_evicted_never_warmed", total(samples, "monitor_evictions_total"))
    assert scored == 4
    assert total(samples, "monitor_messages_total", outcome="refused_cap") == 0
    assert total(samples, "monitor_active_patients") <= 1000
    received, outcomes = outcomes_balance(samples)
    assert received == outcomes == 10_000 + WINDOW + 4
    assert daemon.stop() == 0


@pytest.mark.mqtt
def test_a_patient_refused_at_the_cap_is_a_technical_alert(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """With the cap full of monitored patients, a new patient's samples are refused and it
    gets one high 'patient_refused' alert on alerts/<pid>, the system one on
    alerts/_system, and `monitor_patients_refused` says 1; each once, however many of its
    samples are refused."""
    env = {"MONITOR_WINDOW__MAX_PATIENTS": "2"}
    daemon = Daemon(mosquitto.url, model=model_dir, env=env)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    warm = [(f"vitals/{p}", payload(p, s)) for s in range(WINDOW + 1) for p in ("bed1", "bed2")]
    publish_all(mosquitto.port, warm)
    publish_all(mosquitto.port, [("vitals/bed3", payload("bed3", s)) for s in range(5)])
    daemon.wait_for("monitor_messages_total", 5, outcome="refused_cap")
    first = refused_once(daemon, alerts, "bed3")
    assert (first["kind"], first["severity"], first["vital"]) == ("technical", "high", None)
    assert daemon.stop() == 0


def refused_once(daemon: Daemon, alerts: Listener, pid: str) -> dict[str, Any]:
    """Wait for the refused-patient alerts; check that `pid` and the system have exactly one
    raise each and the gauge says 1; return `pid`'s alert."""
    wait_until(lambda: len(refused_events(alerts)) >= 2, timeout=5)
    time.sleep(0.3)
    # The daemon publishes system-wide alerts first: compare without order.
    assert sorted(refused_events(alerts)) == [
        ("_system", "patients_refused", "raised"),
        (pid, "patient_refused", "raised"),
    ]
    assert total(daemon.metrics(), "monitor_patients_refused") == 1
    first: dict[str, Any] = json.loads(next(b for t, b in alerts.messages if t == f"alerts/{pid}"))
    assert first["patient_id"] == pid
    return first


@pytest.mark.mqtt
def test_a_device_sending_an_unknown_signal_is_a_technical_alert(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """A new device sends its vitals and a signal the daemon was not told of (EtCO2): every
    message is refused whole, and the patient gets one 'patient_refused' alert naming the
    signal, the system one, and the gauge the Prometheus rule watches; its log line says
    why. Before, only `monitor_invalid_messages_total{reason="unknown_vital"}` moved."""
    daemon = Daemon(mosquitto.url, model=model_dir)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    extra = [
        (topic, json.dumps(_with(json.loads(body), "etco2", 38.0)).encode())
        for topic, body in [("vitals/bed9", payload("bed9", s)) for s in range(5)]
    ]
    publish_all(mosquitto.port, extra)
    daemon.wait_for("monitor_invalid_messages_total", 5, reason="unknown_vital")
    first = refused_once(daemon, alerts, "bed9")
    assert (first["severity"], first["vital"]) == ("high", "etco2")
    assert daemon.stop() == 0
    assert "unknown vital(s): etco2" in (tmp_path / "daemon.log").read_text()


def _with(body: dict[str, Any], name: str, value: float) -> dict[str, Any]:
    """A single-sample message with one more signal in its vitals."""
    return {**body, "vitals": {**body["vitals"], name: value}}


def test_a_patient_whose_every_message_lacks_a_vital_is_a_technical_alert() -> None:
    """Every message of a new patient lacks a vital the model needs (`missing_vital`): one
    'patient_refused' alert names it and the vital, the system alert is raised; once it
    sends complete samples both clear."""
    pipeline = make_pipeline(model_window=WINDOW)
    partial = {k: v for k, v in NORMAL.items() if k != "spo2"}
    events = []
    for seq in range(5):
        body = {"v": 1, "patient_id": "mv1", "t": T0 + seq, "seq": seq, "vitals": partial}
        events += ingest_one(pipeline, "vitals/mv1", json.dumps(body).encode(), T0 + seq)
    assert [(e.patient_id, e.reason, e.vital, e.state) for e in events] == [
        ("mv1", "patient_refused", "spo2", "raised"),
        (None, "patients_refused", None, "raised"),
    ]
    assert counter(pipeline, "monitor_patients_refused") == 1
    cleared = ingest_one(pipeline, "vitals/mv1", payload("mv1", 5, t=T0 + 5), T0 + 5)
    assert [(e.patient_id, e.reason, e.state) for e in cleared] == [
        ("mv1", "patient_refused", "cleared"),
        (None, "patients_refused", "cleared"),
    ]
    assert counter(pipeline, "monitor_patients_refused") == 0


REFUSED_BODIES = {
    # A signal the daemon does not know beside the vitals it does: the message is refused
    # whole, and with it every sample of this device. The alert names the signal.
    "unknown_vital": ({"vitals": {**NORMAL, "etco2": 38.0}}, "etco2"),
    # A gateway that writes a vital's name in capitals (not a signal name at all).
    "unknown_vital (malformed name)": ({"vitals": {**NORMAL, "HR": 75.0}}, None),
    # A gateway that writes NaN for a clock it lacks (a NaN vital is that vital's artifact:
    # the others are scored, tests/service/test_pipeline.py).
    "non_finite": ({"t": float("nan")}, None),
    # Numbers sent as strings.
    "bad_schema": ({"vitals": {k: str(v) for k, v in NORMAL.items()}}, None),
}


@pytest.mark.parametrize("case", sorted(REFUSED_BODIES))
def test_a_patient_whose_every_message_is_refused_is_a_technical_alert(case: str) -> None:
    """Every message of a new patient is refused for what its device sends (an unknown
    signal, a NaN time, strings for numbers): one 'patient_refused' alert, the system one, the
    gauge; the counter names the reason; a first accepted sample clears both. Before,
    only a missing vital raised it and these patients went unwatched in silence."""
    pipeline = make_pipeline(model_window=WINDOW)
    change, vital = REFUSED_BODIES[case]
    events = []
    for seq in range(5):
        body = {"v": 1, "patient_id": "dev1", "t": T0 + seq, "seq": seq, "vitals": NORMAL}
        text = json.dumps({**body, **change})  # NaN written as Python's json writes it
        events += ingest_one(pipeline, "vitals/dev1", text.encode(), T0 + seq)
    assert [(e.patient_id, e.reason, e.vital, e.state) for e in events] == [
        ("dev1", "patient_refused", vital, "raised"),
        (None, "patients_refused", None, "raised"),
    ]
    reason = case.partition(" ")[0]
    assert counter(pipeline, "monitor_invalid_messages_total", reason=reason) == 5
    assert counter(pipeline, "monitor_patients_refused") == 1
    cleared = ingest_one(pipeline, "vitals/dev1", payload("dev1", 5, t=T0 + 5), T0 + 5)
    assert [(e.patient_id, e.reason, e.state) for e in cleared] == [
        ("dev1", "patient_refused", "cleared"),
        (None, "patients_refused", "cleared"),
    ]


def test_a_payload_that_is_not_json_refuses_its_topics_patient() -> None:
    """A device whose encoder writes no JSON (here a trailing comma): the payload names no
    patient, its topic does."""
    pipeline = make_pipeline(model_window=WINDOW)
    text = payload("enc1", 0, t=T0).decode()[:-1] + ",}"
    events = ingest_one(pipeline, "vitals/enc1", text.encode(), T0)
    assert [(e.patient_id, e.reason, e.state) for e in events] == [
        ("enc1", "patient_refused", "raised"),
        (None, "patients_refused", "raised"),
    ]
    assert counter(pipeline, "monitor_invalid_messages_total", reason="bad_json") == 1


def test_a_refused_payload_names_its_topics_patient_or_nobody() -> None:
    """The topic names the patient of a refused payload, whatever the payload claims (a
    gateway publishing every bed on its own topic is refused as that topic); a topic level
    that fails the allowlist names nobody, and the refusal is only counted."""
    pipeline = make_pipeline(model_window=WINDOW)
    other = {"v": 1, "patient_id": "bed7", "t": T0, "seq": 0, "vitals": NORMAL}
    events = ingest_one(pipeline, "vitals/gw1", json.dumps(other).encode(), T0)
    assert [(e.patient_id, e.reason, e.state) for e in events] == [
        ("gw1", "patient_refused", "raised"),
        (None, "patients_refused", "raised"),
    ]
    quiet = ingest_one(pipeline, "vitals/bad id", b"not json", T0)
    quiet += ingest_one(pipeline, "vitals/x\n", b"not json", T0)
    quiet += ingest_one(pipeline, "vitals/" + "y" * 65, b"not json", T0)
    assert quiet == []
    assert counter(pipeline, "monitor_patients_refused") == 1
    assert counter(pipeline, "monitor_invalid_messages_total", reason="topic_mismatch") == 1
    assert counter(pipeline, "monitor_invalid_messages_total", reason="bad_json") == 3


def test_an_oversized_payload_refuses_its_topics_patient_unparsed() -> None:
    """A device whose blocks exceed `ingest.max_payload_bytes` is refused as `too_large`
    before parsing; its topic still names the patient."""
    pipeline = make_pipeline(model_window=WINDOW)
    samples = [{"t": T0 + i / 100, "seq": i, "vitals": NORMAL} for i in range(1000)]
    block = json.dumps({"v": 1, "patient_id": "ecg1", "samples": samples}).encode()
    assert len(block) > 64 * 1024
    events = ingest_one(pipeline, "vitals/ecg1", block, T0 + 10)
    assert [(e.patient_id, e.reason, e.state) for e in events] == [
        ("ecg1", "patient_refused", "raised"),
        (None, "patients_refused", "raised"),
    ]
    assert counter(pipeline, "monitor_invalid_messages_total", reason="too_large") == 1


def test_refused_messages_of_a_monitored_patient_raise_signal_lost_not_a_refusal() -> None:
    """A monitored patient whose device starts sending what is refused (here a signal the
    daemon does not know) is not refused: one such message raises nothing, and once none
    of it has been accepted for `stale_after_s` it is 'signal_lost'."""
    pipeline = make_pipeline(model_window=WINDOW, window={"stale_after_s": 5})
    for seq in range(WINDOW + 2):
        ingest_one(pipeline, "vitals/ok2", payload("ok2", seq, t=T0 + seq), T0 + seq)
    events = []
    for seq in range(WINDOW + 2, WINDOW + 12):
        body = json.loads(payload("ok2", seq, t=T0 + seq))
        body["vitals"]["etco2"] = 38.0
        events += ingest_one(pipeline, "vitals/ok2", json.dumps(body).encode(), T0 + seq)
        events += pipeline.housekeeping(T0 + seq)
    assert [(e.patient_id, e.reason, e.state) for e in events] == [("ok2", "signal_lost", "raised")]
    assert counter(pipeline, "monitor_invalid_messages_total", reason="unknown_vital") == 10


def test_a_missing_vital_of_a_monitored_patient_raises_nothing() -> None:
    """A patient being monitored that sends one message lacking a vital is not refused
    (it is monitored; a lasting loss shows as 'signal lost')."""
    pipeline = make_pipeline(model_window=WINDOW)
    for seq in range(WINDOW + 2):
        ingest_one(pipeline, "vitals/ok1", payload("ok1", seq, t=T0 + seq), T0 + seq)
    body = {"v": 1, "patient_id": "ok1", "t": T0 + 20, "seq": 20, "vitals": {"spo2": 97.0}}
    assert ingest_one(pipeline, "vitals/ok1", json.dumps(body).encode(), T0 + 20) == []


def test_a_refused_patient_that_goes_silent_ends_its_alert() -> None:
    """A refused patient silent past the staleness limit: its alert ends ('expired'), and
    the system alert clears with the last one; open alerts stay bounded."""
    pipeline = make_pipeline(model_window=WINDOW, window={"max_patients": 1, "stale_after_s": 5})
    for seq in range(WINDOW + 1):
        ingest_one(pipeline, "vitals/bed1", payload("bed1", seq, t=T0 + seq), T0 + seq)
    events = ingest_one(pipeline, "vitals/late1", payload("late1", 0, t=T0 + 9), T0 + 9)
    assert [(e.patient_id, e.reason, e.state) for e in events] == [
        ("late1", "patient_refused", "raised"),
        (None, "patients_refused", "raised"),
    ]
    for seq in range(WINDOW + 1, 20):  # bed1 goes on; late1 is silent
        ingest_one(pipeline, "vitals/bed1", payload("bed1", seq, t=T0 + seq), T0 + seq)
        jobs = pipeline.drain_all()
        pipeline.score(jobs, persistence_predictions(jobs), T0 + seq, live=False)
        events += pipeline.housekeeping(T0 + seq)
    assert [(e.patient_id, e.reason, e.state) for e in events[2:]] == [
        ("late1", "patient_refused", "expired"),
        (None, "patients_refused", "cleared"),
    ]
    assert counter(pipeline, "monitor_patients_refused") == 0
    assert counter(pipeline, "monitor_active_alerts", kind="technical") == 0
