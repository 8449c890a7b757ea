"""End to end: simulator -> real Mosquitto -> `monitor run` -> alerts and /metrics."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from monitor.model.card import ModelCard
from monitor.model.store import CARD_FILE, default_model_path
from tests.support.daemon import Daemon, settle, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

START = 1_700_000_000.0
# The served (default) model's window: the first WINDOW samples of a patient warm up.
WINDOW = ModelCard.from_json((default_model_path() / CARD_FILE).read_text()).window
# The simulated clock runs faster than the wall clock: sample times lie in the future.
FAST_CLOCK_ENV = {"MONITOR_INGEST__MAX_FUTURE_SKEW_S": "1e9", "MONITOR_INGEST__MAX_AGE_S": "1e10"}


def simulate(broker: Mosquitto, tmp: Path, *args: str) -> Path:
    """Run `monitor simulate` to completion; return its labels file."""
    labels = tmp / "labels.jsonl"
    cmd = [
        sys.executable,
        "-m",
        "monitor.cli",
        "simulate",
        "--broker",
        broker.url,
        "--qos",
        "1",
        "--start-time",
        str(START),
        "--labels",
        str(labels),
        *args,
    ]
    subprocess.run(cmd, check=True, timeout=120, capture_output=True)
    return labels


def test_spikes_raise_alerts_on_the_right_patient_and_vital(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path
) -> None:
    """Every injected spike of >= 10 sigma raises an alert on its patient and vital."""
    daemon = Daemon(mosquitto.url, model_dir, env=FAST_CLOCK_ENV)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    listener = Listener(mosquitto.port)
    try:
        labels_path = simulate(
            mosquitto,
            tmp_path,
            "--patients",
            "20",
            "--duration",
            "1500",
            "--speed",
            "150",
            "--scenario",
            "mixed",
            "--seed",
            "3",
            "--warmup",
            "90",
            "--gap",
            "20",
            "40",
        )
        labels = [json.loads(line) for line in labels_path.read_text().splitlines()]
        silenced = sum(
            lb["end_seq"] - lb["start_seq"] + 1 for lb in labels if lb["kind"] == "dropout"
        )
        metrics = settle(daemon, 20 * 1500 - silenced)
        time.sleep(1.0)
    finally:
        listener.close()
        code = daemon.stop()
    assert code == 0
    # A dropout longer than the gap limit restarts the window: the next `window` samples
    # are warm-up and cannot be scored.
    warming = {
        (lb["patient_id"], seq)
        for lb in labels
        if lb["kind"] == "dropout"
        for seq in range(lb["end_seq"] + 1, lb["end_seq"] + 2 + WINDOW)
    }
    spikes = [
        lb
        for lb in labels
        if lb["kind"] == "spike"
        and lb["magnitude_sigma"] >= 10
        and (lb["patient_id"], lb["start_seq"]) not in warming
    ]
    assert len(spikes) >= 3, f"the scenario injected too few big spikes: {len(spikes)}"
    physiological = [e for e in listener.events() if e["kind"] == "physiological"]

    def alerting(spike: dict[str, Any]) -> bool:
        """An alert on the spike's patient and vital is raised at the spike or just after."""
        mine = [
            e
            for e in physiological
            if e["patient_id"] == spike["patient_id"] and e["vital"] == spike["vital"]
        ]
        before = [e for e in mine if e["t"] < spike["start_t"]]
        already = bool(before) and before[-1]["state"] != "cleared"
        return already or any(
            e["state"] in ("raised", "escalated")
            and spike["start_t"] <= e["t"] <= spike["end_t"] + 2.0
            for e in mine
        )

    missed = [s for s in spikes if not alerting(s)]
    assert missed == [], f"spikes without an alert: {missed}"
    for topic, body in listener.messages:
        event = json.loads(body)
        assert topic == f"alerts/{event['patient_id'] or '_system'}"
    # Every metric the issue names is exported with activity.
    for name in (
        "monitor_prediction_error_count",
        "monitor_inference_latency_seconds_count",
        "monitor_end_to_end_latency_seconds_count",
        "monitor_batch_size_count",
        "monitor_messages_total",
        "monitor_alerts_total",
        "monitor_received_total",
    ):
        assert total(metrics, name) > 0, name
    assert total(metrics, "monitor_active_patients") == 20
    assert total(metrics, "monitor_mqtt_connected") == 1
    assert total(metrics, "monitor_model_info") == 1
    assert ("monitor_mqtt_reconnects_total", ()) in metrics
    # Every received message ended in exactly one counted outcome.
    assert total(metrics, "monitor_received_total") == total(metrics, "monitor_messages_total")


def test_clean_stream_raises_no_alert(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path
) -> None:
    """20 stable patients for 300 simulated seconds: everything scored, no alert at all."""
    daemon = Daemon(mosquitto.url, model_dir, env=FAST_CLOCK_ENV)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    listener = Listener(mosquitto.port)
    try:
        simulate(
            mosquitto,
            tmp_path,
            "--patients",
            "20",
            "--duration",
            "300",
            "--speed",
            "60",
            "--scenario",
            "stable",
            "--seed",
            "11",
        )
        metrics = settle(daemon, 20 * 300)
        time.sleep(0.5)
    finally:
        listener.close()
        assert daemon.stop() == 0
    assert total(metrics, "monitor_messages_total", outcome="scored") == 20 * (300 - WINDOW)
    assert total(metrics, "monitor_messages_total", outcome="warming_up") == 20 * WINDOW
    assert listener.events() == []
    assert total(metrics, "monitor_alerts_total") == 0


def test_sigterm_scores_the_batch_in_flight_and_publishes_its_alert(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path
) -> None:
    """SIGTERM with a window still queued: it is scored, its alert published, exit code 0."""
    # Batches wait up to 60 s: only the shutdown can flush the last sample.
    env = {
        **FAST_CLOCK_ENV,
        "MONITOR_BATCH__MAX_WAIT_MS": "60000",
        "MONITOR_BATCH__MAX_BATCH": "100000",
    }
    daemon = Daemon(mosquitto.url, model_dir, env=env)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    listener = Listener(mosquitto.port)
    publisher = paho.Client(paho.CallbackAPIVersion.VERSION2)
    publisher.connect("127.0.0.1", mosquitto.port)
    publisher.loop_start()
    try:
        last = WINDOW + 1  # two full windows: samples WINDOW and WINDOW + 1 are scored
        for seq in range(last + 1):
            hr = 200.0 if seq == last else 70.0 + (seq % 3)
            body = {
                "v": 1,
                "patient_id": "bed7",
                "t": START + seq,
                "seq": seq,
                "vitals": {
                    "heart_rate": hr,
                    "spo2": 97.0,
                    "resp_rate": 14.0,
                    "bp_sys": 120.0,
                    "bp_dia": 80.0,
                    "temperature": 36.9,
                },
            }
            publisher.publish("vitals/bed7", json.dumps(body), qos=1).wait_for_publish(5)
        daemon.wait_for("monitor_received_total", last + 1)
        daemon.wait_for("monitor_pending_windows", 2)
        assert total(daemon.metrics(), "monitor_messages_total", outcome="scored") == 0
        code = daemon.stop()
        time.sleep(0.5)
    finally:
        publisher.loop_stop()
        listener.close()
        daemon.stop()
    assert code == 0
    raised = [e for e in listener.events() if e["state"] == "raised" and e["vital"] == "heart_rate"]
    assert [(e["patient_id"], e["seq"]) for e in raised] == [("bed7", last)]
    assert raised[0]["severity"] == "high"
