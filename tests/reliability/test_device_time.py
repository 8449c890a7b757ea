"""Device order and clock faults against a real Mosquitto (issue 16 items 1-2, issue 18
item 1): a restarted counter, one hostile seq, a clock with a constant offset."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.reliability.conftest import WINDOW, outcomes_balance, payload, publisher
from tests.reliability.test_delivery import publish_all, wait_until
from tests.support.daemon import Daemon, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt

#: Fast housekeeping and a short 'signal lost' limit: a patient whose samples are all
#: dropped would show 'signal_lost' within a second.
ENV = {"MONITOR_WINDOW__STALE_AFTER_S": "1.0", "MONITOR_HOUSEKEEPING_INTERVAL_S": "0.1"}


def stream(port: int, pid: str, seqs: range, offset_s: float = 0.0, every_s: float = 0.1) -> None:
    """Publish one sample per seq, `every_s` apart in real time, stamped now + `offset_s`."""
    client = publisher(port)
    try:
        for seq in seqs:
            body = payload(pid, seq, t=time.time() + offset_s)
            client.publish(f"vitals/{pid}", body, qos=1).wait_for_publish(5)
            time.sleep(every_s)
    finally:
        client.disconnect()
        client.loop_stop()


def technical(alerts: Listener, reason: str) -> list[dict[str, Any]]:
    """The technical alert events with this reason received so far."""
    return [e for e in alerts.events() if e["kind"] == "technical" and e["reason"] == reason]


def test_a_restarted_device_is_scored_again_at_once_without_flapping(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
    figure: Callable[[str, Any], None],
) -> None:
    """A device counting seq from 0 again (its clock going on) is scored from its first
    sample after the restart: counted once (`monitor_device_restarts_total`), logged once,
    nothing `late`, and no 'signal_lost' raised or cleared while it streams."""
    daemon = Daemon(mosquitto.url, model=model_dir, env=ENV)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    stream(mosquitto.port, "boot1", range(5000, 5020))
    before = daemon.wait_for("monitor_messages_total", 20 - WINDOW, outcome="scored")
    # The restart: seq from 0; the first sample after it, then the time until it is scored.
    t0 = time.monotonic()
    stream(mosquitto.port, "boot1", range(0, 1), every_s=0.0)
    daemon.wait_for("monitor_messages_total", before + 1, outcome="scored", timeout=10)
    resume_s = time.monotonic() - t0
    stream(mosquitto.port, "boot1", range(1, 30))
    scored = daemon.wait_for("monitor_messages_total", before + 30, outcome="scored")
    time.sleep(0.3)
    samples = daemon.metrics()
    figure("device_restart_resume_scoring_s", round(resume_s, 3))
    figure("device_restart_samples_unscored", 30 - (scored - before))
    assert scored - before == 30
    assert total(samples, "monitor_messages_total", outcome="late") == 0
    assert total(samples, "monitor_device_restarts_total") == 1
    assert [e["event"] for e in daemon.log_events()].count("device_restart") == 1
    assert technical(alerts, "signal_lost") == []
    received, outcomes = outcomes_balance(samples)
    assert received == outcomes == 50
    assert daemon.stop() == 0


def test_one_hostile_seq_does_not_silence_a_patient(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """One schema-valid message with seq 2**63-1 in the middle of a stream: the stream's
    next samples are scored (not `late`), the jump is counted as suspect, and the sequence
    gap counter stays at the real stream's gaps (here one: the number the hostile message
    took the place of)."""
    daemon = Daemon(mosquitto.url, model=model_dir, env=ENV)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    stream(mosquitto.port, "seq1", range(1, 16))
    publish_all(mosquitto.port, [("vitals/seq1", payload("seq1", 2**63 - 1))])
    stream(mosquitto.port, "seq1", range(17, 32))
    daemon.wait_for("monitor_received_total", 31)
    time.sleep(0.3)
    samples = daemon.metrics()
    assert total(samples, "monitor_messages_total", outcome="late") == 0
    assert total(samples, "monitor_messages_total", outcome="scored") == 31 - WINDOW
    assert total(samples, "monitor_order_suspect_total", kind="seq_jump") == 1
    assert total(samples, "monitor_sequence_gaps_total") == 1
    assert total(samples, "monitor_device_restarts_total") == 0
    assert technical(alerts, "signal_lost") == []
    assert daemon.stop() == 0


@pytest.mark.parametrize("offset_s", [300.0, -300.0])
def test_a_device_with_a_constant_clock_offset_is_scored_and_flagged_once(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
    offset_s: float,
) -> None:
    """A device whose clock is 5 minutes ahead (or behind) of the daemon's, on default
    ingest settings: every sample past warm-up is scored, and one low 'clock_offset'
    technical alert says so; nothing is refused as clock_skew."""
    daemon = Daemon(mosquitto.url, model=model_dir, env=ENV)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    stream(mosquitto.port, "skew1", range(30), offset_s=offset_s)
    daemon.wait_for("monitor_messages_total", 30 - WINDOW, outcome="scored")
    wait_until(lambda: bool(technical(alerts, "clock_offset")), timeout=5)
    time.sleep(0.3)
    samples = daemon.metrics()
    assert total(samples, "monitor_messages_total", outcome="scored") == 30 - WINDOW
    assert total(samples, "monitor_invalid_messages_total", reason="clock_skew") == 0
    flagged = technical(alerts, "clock_offset")
    assert [(e["patient_id"], e["state"], e["severity"]) for e in flagged] == [
        ("skew1", "raised", "low")
    ]
    assert technical(alerts, "clock_skew") == []
    assert [e["event"] for e in daemon.log_events()].count("clock_offset") == 1
    assert daemon.stop() == 0
