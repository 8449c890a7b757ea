"""No patient data leaks through logs, metrics or topics (items 10, 11 and 14), end to end."""

from __future__ import annotations

import json
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from monitor.settings import Settings
from tests.reliability.conftest import outcomes_balance, payload
from tests.reliability.test_delivery import publish_all
from tests.support.daemon import Daemon, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt
REAL_IDS = ["leakcheck01", "leakcheck02", "artifactonly7", "secretroom42", "otherbed99"]
HOSTILE = ["p+1", "p#1", "a/b", "p\x001", "$SYS", "p\n1", "\x1b[31mred", "../etc"]
#: Every label name the daemon may export; none of them can hold an id or a vital value.
LABELS = {"outcome", "reason", "vital", "severity", "kind", "version", "device", "le"}


def is_number(text: str) -> bool:
    """Tell whether a label value parses as a number (a vital value would)."""
    try:
        float(text)
    except ValueError:
        return False
    return True


def metrics_bind_address(port: int) -> str:
    """The local address a listening TCP socket on `port` is bound to (from /proc)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if int(hex_port, 16) == port and state == "0A":  # 0A: LISTEN
            return ".".join(str(int(address[i : i + 2], 16)) for i in (6, 4, 2, 0))
    raise LookupError(f"nothing listens on {port}")


def test_logs_metrics_and_topics_carry_no_patient_data(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """After normal streams, impossible values, hostile ids and topic mismatches: the logs
    and /metrics contain no raw patient id (pseudonyms only), no label can carry an id or a
    value, alerts go only to alerts/<valid id> or alerts/_system, artifacts raise technical
    alerts only, and /metrics listens on 127.0.0.1 by default."""
    env = {"MONITOR_LOG__INVALID_LOG_INTERVAL_S": "0"}  # log every rejection: worst case
    daemon = Daemon(mosquitto.url, model=model_dir, env=env)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port)
    messages = [(f"vitals/{p}", payload(p, s)) for s in range(12) for p in REAL_IDS[:2]]
    messages += [(f"vitals/{REAL_IDS[2]}", payload(REAL_IDS[2], 0, heart_rate=400.0))]
    messages += [(f"vitals/{REAL_IDS[2]}", payload(REAL_IDS[2], 1, spo2=100.5))]
    messages += [(f"vitals/{REAL_IDS[3]}", payload(REAL_IDS[4], 0))]  # topic mismatch
    messages += [("vitals/hostile", payload(p, 0)) for p in HOSTILE]
    messages += [("vitals/hostile", payload("x" * 65536, 0))]
    publish_all(mosquitto.port, messages)
    daemon.wait_for("monitor_received_total", len(messages), timeout=60)
    time.sleep(0.5)
    samples = daemon.metrics()
    with urllib.request.urlopen(daemon.metrics_url) as resp:  # noqa: S310 - loopback
        exposition = resp.read().decode()
    bound = metrics_bind_address(daemon.metrics_port)
    assert daemon.stop() == 0
    log = daemon.log_text()

    received, outcomes = outcomes_balance(samples)
    assert received == outcomes == len(messages)
    assert total(samples, "monitor_invalid_messages_total", reason="bad_patient_id") == 8
    # The 64 KiB id makes the payload larger than the limit: refused before parsing.
    assert total(samples, "monitor_invalid_messages_total", reason="too_large") == 1
    assert total(samples, "monitor_invalid_messages_total", reason="artifact") == 2
    assert total(samples, "monitor_invalid_messages_total", reason="topic_mismatch") == 1
    for pid in REAL_IDS:
        assert pid not in log
        assert pid not in exposition
    for pid in HOSTILE:
        assert json.dumps(pid)[1:-1] not in log
        assert pid not in exposition
    assert "x" * 100 not in log
    rejected = [e for e in daemon.log_events() if e.get("event") == "message_rejected"]
    assert len(rejected) == 12
    assert all(e["patient"] is None or e["patient"].startswith("pt-") for e in rejected)
    assert {name for _, labels in samples for name, _ in labels} <= LABELS
    numeric = [v for _, labels in samples for k, v in labels if k != "le" and is_number(v)]
    assert numeric == []

    topics = {topic for topic, _ in alerts.messages}
    assert topics <= {f"alerts/{p}" for p in [*REAL_IDS, "hostile"]} | {"alerts/_system"}
    # Topics whose every message was refused are refused patients, named by the topic
    # (never by the payload's id: secretroom42's topic carried otherbed99's payload).
    refused = {e["patient_id"] for e in alerts.events() if e["reason"] == "patient_refused"}
    assert refused == {REAL_IDS[3], "hostile"}
    artifact = [e for e in alerts.events() if e["patient_id"] == REAL_IDS[2]]
    assert {(e["kind"], e["reason"], e["state"]) for e in artifact} == {
        ("technical", "artifact", "raised")
    }
    assert {e["vital"] for e in artifact} == {"heart_rate", "spo2"}
    assert bound == "127.0.0.1" == Settings().metrics.host
