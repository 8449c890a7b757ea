"""Faults between broker and daemon: restarts, crashes and a silently dead link (items 1-2)."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.reliability.conftest import WINDOW, outcomes_balance
from tests.reliability.stream import Stream
from tests.support.daemon import Daemon, total
from tests.support.mosquitto import Mosquitto
from tests.support.proxy import TcpProxy

pytestmark = pytest.mark.mqtt
PATIENTS = 5
KEEPALIVE_S = 5


def wait_gauge(daemon: Daemon, name: str, value: float, timeout: float) -> float:
    """Poll /metrics until gauge `name` equals `value`; return the seconds it took."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if total(daemon.metrics(), name) == value:
            return time.monotonic() - t0
        time.sleep(0.02)
    raise TimeoutError(f"{name} != {value} after {timeout}s")


def settle(daemon: Daemon) -> dict[Any, float]:
    """Scrape until `monitor_received_total` stops moving; return the last scrape."""
    last = -1.0
    while True:
        time.sleep(0.5)
        samples = daemon.metrics()
        received = total(samples, "monitor_received_total")
        if received == last:
            return samples
        last = received


def restarts(
    broker: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    sig: int,
    times: int,
) -> tuple[list[float], dict[Any, float], int, Daemon]:
    """Stream through `times` broker stops with `sig`; return reconnect times and figures."""
    daemon = Daemon(broker.url, model=model_dir)
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    stream = Stream(broker.port, PATIENTS, rate_hz=20)
    stream.start()
    daemon.wait_for("monitor_messages_total", PATIENTS * 5, outcome="scored")
    back: list[float] = []
    for _ in range(times):
        broker.stop(sig)
        wait_gauge(daemon, "monitor_mqtt_connected", 0, timeout=30)
        time.sleep(1.0)  # down for a while: the daemon's backoff grows meanwhile
        broker.start()
        back.append(wait_gauge(daemon, "monitor_mqtt_connected", 1, timeout=30))
        time.sleep(1.0)
    time.sleep(2.0)  # the publisher reconnects (1 s delay), then the last samples flow
    sent = stream.stop()
    samples = settle(daemon)
    return back, samples, sent, daemon


def check_accounting(samples: dict[Any, float], sent: int) -> None:
    """Every sample has one outcome; windows survived; gaps are exactly the samples lost."""
    received, outcomes = outcomes_balance(samples)
    assert received == outcomes
    # Windows live in the pipeline, not the connection: each patient warmed up exactly once.
    assert total(samples, "monitor_messages_total", outcome="warming_up") == PATIENTS * WINDOW
    accepted = total(samples, "monitor_messages_total", outcome="scored") + PATIENTS * WINDOW
    assert total(samples, "monitor_sequence_gaps_total") == sent - accepted
    assert total(samples, "monitor_messages_total", outcome="invalid") == 0


def test_graceful_restarts(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, figure: Callable[[str, Any], None]
) -> None:
    """Five graceful broker restarts: re-subscribed each time, nothing lost uncounted,
    windows kept, each lost sample counted once as a sequence gap, exit 0."""
    back, samples, sent, daemon = restarts(mosquitto, model_dir, tmp_path, signal.SIGTERM, 5)
    figure("restart_graceful_resubscribe_s", [round(x, 3) for x in back])
    figure("restart_graceful_sequence_gaps", total(samples, "monitor_sequence_gaps_total"))
    check_accounting(samples, sent)
    assert total(samples, "monitor_mqtt_reconnects_total") >= 5
    assert daemon.stop() == 0
    assert sum(e.get("event") == "subscribed" for e in daemon.log_events()) == 6


@pytest.mark.perf
def test_graceful_restarts_resubscribe_within_2_s(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, figure: Callable[[str, Any], None]
) -> None:
    """Five graceful broker restarts: re-subscribed within 2 s p95 (5 s max)."""
    back, _, _, daemon = restarts(mosquitto, model_dir, tmp_path, signal.SIGTERM, 5)
    figure("restart_graceful_resubscribe_s", [round(x, 3) for x in back])
    assert float(np.percentile(back, 95)) <= 2.0
    assert max(back) <= 5.0
    assert daemon.stop() == 0


def sigkill_restarts(
    tmp_path: Path, model_dir: Path, figure: Callable[[str, Any], None]
) -> list[float]:
    """A broker SIGKILLed twice with no persistence (session lost): the daemon subscribes
    again each time and keeps counting exactly. Returns the seconds to each reconnect."""
    broker = Mosquitto(workdir=tmp_path / "mosquitto", persistence=False)
    broker.start()
    try:
        back, samples, sent, daemon = restarts(broker, model_dir, tmp_path, signal.SIGKILL, 2)
        figure("restart_sigkill_resubscribe_s", [round(x, 3) for x in back])
        check_accounting(samples, sent)
        assert total(samples, "monitor_messages_total", outcome="scored") > 0
        assert daemon.stop() == 0
        assert sum(e.get("event") == "subscribed" for e in daemon.log_events()) == 3
    finally:
        broker.stop()
    return back


def test_sigkill_restarts_without_persistence(
    tmp_path: Path, model_dir: Path, figure: Callable[[str, Any], None]
) -> None:
    """A broker SIGKILLed twice with no persistence (session lost): the daemon subscribes
    again each time and keeps counting exactly."""
    sigkill_restarts(tmp_path, model_dir, figure)


@pytest.mark.perf
def test_sigkill_restarts_resubscribe_within_2_s(
    tmp_path: Path, model_dir: Path, figure: Callable[[str, Any], None]
) -> None:
    """After each SIGKILL of a broker without persistence the daemon is back within 2 s."""
    assert max(sigkill_restarts(tmp_path, model_dir, figure)) <= 2.0


def silent_link(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, figure: Callable[[str, Any], None]
) -> tuple[float, float]:
    """A link that goes silent without closing (keepalive 5 s) is dropped by the daemon's
    watchdog, not before 1.5 x keepalive of silence; the daemon reconnects and scores
    again. Returns the seconds to detection and the watchdog's reported silence."""
    keepalive = KEEPALIVE_S
    proxy = TcpProxy(mosquitto.port)
    proxy.start()
    daemon = Daemon(proxy.url, model=model_dir, args=["--keepalive", str(keepalive)])
    stream = Stream(mosquitto.port, 2, rate_hz=10)
    try:
        daemon.start(tmp_path / "daemon.log")
        daemon.wait_ready()
        stream.start()
        daemon.wait_for("monitor_messages_total", 4, outcome="scored")
        proxy.blackhole()
        detected = wait_gauge(daemon, "monitor_mqtt_connected", 0, timeout=4 * keepalive)
        back = wait_gauge(daemon, "monitor_mqtt_connected", 1, timeout=30)
        scored = total(daemon.metrics(), "monitor_messages_total", outcome="scored")
        daemon.wait_for("monitor_messages_total", scored + 4, outcome="scored", timeout=30)
        figure("silent_link_detected_s", round(detected, 3))
        figure("silent_link_reconnected_after_s", round(back, 3))
        # The vitals' and the alerts' connections, then both again after the drop.
        assert proxy.connections == 4
        silent = [e for e in daemon.log_events() if e.get("event") == "broker_silent"]
        assert len(silent) == 1
        assert silent[0]["silent_s"] >= 1.5 * keepalive
    finally:
        stream.stop()
        assert daemon.stop() == 0
        proxy.close()
    return detected, float(silent[0]["silent_s"])


def test_silent_link_dropped_by_the_watchdog(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, figure: Callable[[str, Any], None]
) -> None:
    """A link that goes silent without closing is dropped by the daemon's watchdog (one
    'broker_silent' event, after at least 1.5 x keepalive of silence), then the daemon
    reconnects and scores again."""
    silent_link(mosquitto, model_dir, tmp_path, figure)


@pytest.mark.perf
def test_silent_link_detected_within_two_keepalives(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, figure: Callable[[str, Any], None]
) -> None:
    """A silent link is dropped within 2 x keepalive (5 s here, the issue's example; the
    watchdog's limit is 7.5 s), by the watchdog: it reports 1.5 to 1.5 x keepalive + 1 s of
    silence. paho's own timeout comes at 2 x keepalive, give or take its 1 s tick (one CI
    run: 6.004 s with a 3 s keepalive, when the watchdog read paho's silence, which each
    PINGREQ resets)."""
    detected, silent_s = silent_link(mosquitto, model_dir, tmp_path, figure)
    assert detected <= 2 * KEEPALIVE_S
    assert silent_s <= 1.5 * KEEPALIVE_S + 1.0
