"""End to end: `monitor run` saves patient state on SIGTERM and scores on after a restart.

A real Mosquitto and two daemon processes in turn, with one snapshot path: the first
daemon fills every patient's window, is stopped with SIGTERM, and the second one scores
each patient's first sample after the restart instead of warming up for a whole window.
"""

from __future__ import annotations

import json
from pathlib import Path

import paho.mqtt.client as paho
import pytest

from monitor.core.vitals import CLINICAL_VITALS
from monitor.model.card import ModelCard
from monitor.model.store import CARD_FILE
from tests.support.daemon import Daemon, settle, total
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

NORMAL = [75.0, 97.0, 16.0, 120.0, 80.0, 37.0]
PATIENTS = [f"p{i}" for i in range(4)]
# Sample times are ours, not the wall clock's: the daemon must accept any of them.
FAST_CLOCK_ENV = {"MONITOR_INGEST__MAX_FUTURE_SKEW_S": "1e9", "MONITOR_INGEST__MAX_AGE_S": "1e10"}
START = 1_700_000_000.0


def publish(port: int, seqs: range) -> int:
    """Publish one sample per patient per seq (QoS 1, all acknowledged); return the count."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.max_inflight_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for seq in seqs:
        for p, pid in enumerate(PATIENTS):
            # A little wobble: a constant sensor would (rightly) raise 'flatline'.
            vitals = {
                name: value + 0.1 * ((seq * 7 + i + p) % 5)
                for i, (name, value) in enumerate(zip(CLINICAL_VITALS, NORMAL, strict=True))
            }
            body = {"v": 1, "patient_id": pid, "t": START + seq, "seq": seq, "vitals": vitals}
            infos.append(client.publish(f"vitals/{pid}", json.dumps(body), qos=1))
    for info in infos:
        info.wait_for_publish(30)
    client.loop_stop()
    client.disconnect()
    return len(infos)


def outcomes_after(daemon: Daemon, expected: int) -> dict[str, float]:
    """Wait until `expected` samples have an outcome; return the scored and warming-up counts."""
    m = settle(daemon, expected)
    return {o: total(m, "monitor_messages_total", outcome=o) for o in ("scored", "warming_up")}


def events(daemon: Daemon, name: str) -> list[dict[str, object]]:
    """The daemon's log lines of one event."""
    return [e for e in daemon.log_events() if e.get("event") == name]


def test_restart_with_a_snapshot_scores_the_first_sample(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path
) -> None:
    """After SIGTERM and a restart with the same state path, each patient's first sample
    is `scored` (without the snapshot it would warm up for a whole window)."""
    window = ModelCard.from_json((model_dir / CARD_FILE).read_text()).window
    env = {**FAST_CLOCK_ENV, "MONITOR_STATE__SNAPSHOT_PATH": str(tmp_path / "state.snapshot")}
    first = Daemon(mosquitto.url, model_dir, env=env)
    first.start(tmp_path / "first.log")
    first.wait_ready()
    sent = publish(mosquitto.port, range(1, window + 3))
    before = outcomes_after(first, sent)
    assert before["scored"] == 2 * len(PATIENTS)  # the samples after a full window
    assert first.stop() == 0
    assert [e["patients"] for e in events(first, "snapshot_written")] == [len(PATIENTS)]

    second = Daemon(mosquitto.url, model_dir, env=env)
    second.start(tmp_path / "second.log")
    second.wait_ready()
    assert [e["patients"] for e in events(second, "snapshot_restored")] == [len(PATIENTS)]
    after = outcomes_after(second, publish(mosquitto.port, range(window + 3, window + 4)))
    assert after == {"scored": len(PATIENTS), "warming_up": 0}
    assert second.stop() == 0
    assert events(second, "snapshot_refused") == []
