"""The model forward raises (a GPU fault, an out-of-memory error): no patient is watched
while it does, so it is a technical alert, never silence."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.conftest import WINDOW, Feed, outcomes_balance
from tests.support.daemon import Daemon, eventually, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt


def test_failing_forwards_raise_one_system_alert_until_a_forward_is_scored(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """Every forward raises while a flag file exists (tests/support/slowed_run.py). The
    first failed batch raises `inference_failed` (technical, high) on alerts/_system, once
    however many batches fail; /readyz answers 503 and the samples end `failed`; once the
    flag is gone, the first batch scored `window.stale_after_s` after the last failure
    clears it and /readyz answers 200 again. Before,
    a log line and the `failed` outcome were all there was: every patient went unwatched
    while the alert topics stayed quiet."""
    flag = tmp_path / "fail-forwards"
    # The alert clears at the first batch scored stale_after_s after the last failure.
    env = {"MONITOR_WINDOW__STALE_AFTER_S": "2"}
    daemon = Daemon(mosquitto.url, model=model_dir, env=env, fail_forwards_while=flag)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    alerts = listener_factory(mosquitto.port, "alerts/_system")
    feed = Feed(mosquitto.url, "if")

    feed.send(WINDOW + 4)
    daemon.wait_for("monitor_messages_total", 12, outcome="scored")
    assert alerts.changes("inference_failed") == []
    flag.touch()
    feed.send(20)
    daemon.wait_for("monitor_messages_total", 30, outcome="failed")
    assert eventually(lambda: len(alerts.changes("inference_failed")) == 1)
    assert alerts.changes("inference_failed") == [
        ("technical", "inference_failed", "raised", "high", None)
    ]
    assert daemon.http_status("/readyz") == 503
    failed_log = [e for e in daemon.log_events() if e.get("event") == "inference_failed"]
    assert failed_log
    flag.unlink()
    deadline = time.monotonic() + 30
    while len(alerts.changes("inference_failed")) < 2 and time.monotonic() < deadline:
        feed.send(5)
    assert alerts.changes("inference_failed")[1:] == [
        ("technical", "inference_failed", "cleared", "high", None)
    ]
    raised, cleared = (e["t"] for e in alerts.events() if e.get("reason") == "inference_failed")
    assert cleared - raised >= 2.0  # held open for stale_after_s past the last failure
    assert eventually(lambda: daemon.http_status("/readyz") == 200)
    feed.close()
    samples = daemon.metrics()
    assert total(samples, "monitor_technical_alerts_total", reason="inference_failed") == 1
    assert eventually(lambda: len(set(outcomes_balance(daemon.metrics()))) == 1)
    assert daemon.stop() == 0
