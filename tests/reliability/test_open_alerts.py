"""Open alerts through a real Mosquitto and `monitor run` processes: a consumer that
connects late sees every alert still open (retained state messages), and a restart that
does not hold an alert ends it (docs/alerts.md, "Open alerts")."""

from __future__ import annotations

import json
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.reliability.conftest import Feed
from tests.support.daemon import Daemon, eventually
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt


def retained(listener: Listener, topic: str, kept: bool = False) -> list[bytes]:
    """The payloads `listener` got on `topic`, in order (`kept`: only those the broker
    kept and sent on subscribing, the retain flag set)."""
    with listener._lock:
        return [p for t, p in (listener.retained if kept else listener.messages) if t == topic]


def serving(mosquitto: Mosquitto, model_dir: Path, log: Path, env: dict[str, str]) -> Daemon:
    """A ready `monitor run` logging to `log`."""
    daemon = Daemon(mosquitto.url, model_dir, env=env)
    daemon.start(log)
    daemon.wait_ready()
    return daemon


def reasons(payload: bytes) -> list[tuple[str, str, str]]:
    """(kind, reason, state) of each open alert of a state message."""
    return [(a["kind"], a["reason"], a["state"]) for a in json.loads(payload)["open"]]


def test_a_consumer_that_connects_late_sees_every_open_alert(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """late1's device goes quiet and gets `signal_lost`, raised once. A consumer that
    subscribes afterwards (a central station restarted) gets late1's state message at
    once, retained, with the open alert, and no signal lost for late0. late1 comes
    back: its state message is deleted (an empty retained message), so a consumer that
    subscribes after that gets nothing for it. Before (ba68fe7) a late consumer learned of
    no alert raised before it listened: late1 would have shown as fine until its next
    alert change."""
    env = {"MONITOR_WINDOW__STALE_AFTER_S": "1.0"}
    alerts = listener_factory(mosquitto.port)
    watcher = listener_factory(mosquitto.port, "alert-state/#")
    daemon = serving(mosquitto, model_dir, tmp_path / "daemon.log", env)
    feed = Feed(mosquitto.url, "late", patients=2)

    def rounds(until: Callable[[], bool]) -> Callable[[], bool]:
        def step() -> bool:
            feed.send(1)
            time.sleep(0.1)
            return until()

        return step

    try:
        feed.send(20)
        feed.ids = ["late0"]  # late1's device goes quiet
        raised = [("technical", "signal_lost", "raised", "high", "late1")]
        assert eventually(rounds(lambda: alerts.changes("signal_lost") == raised), 20.0)

        # Published (a watcher from the start saw it go out), then a station connects.
        assert eventually(lambda: bool(retained(watcher, "alert-state/late1")), 10.0)
        station = listener_factory(mosquitto.port, "alert-state/#")
        assert eventually(lambda: bool(retained(station, "alert-state/late1", kept=True)), 10.0)
        (state,) = retained(station, "alert-state/late1", kept=True)
        assert json.loads(state)["patient_id"] == "late1"
        # Its open alerts: the signal lost (a physiological episode may be open too).
        assert ("technical", "signal_lost", "raised") in reasons(state)
        assert not any(  # late0 streams: no signal lost (the test model may raise others)
            ("technical", "signal_lost", "raised") in reasons(p)
            for p in retained(station, "alert-state/late0")
        )

        feed.ids = ["late0", "late1"]  # late1 is back: cleared, its state deleted
        assert eventually(rounds(lambda: retained(station, "alert-state/late1")[-1:] == [b""]))
        assert alerts.changes("signal_lost")[-1] == (
            "technical",
            "signal_lost",
            "cleared",
            "high",
            "late1",
        )
        after = listener_factory(mosquitto.port, "alert-state/#")
        time.sleep(1.0)  # a retained message would have come with the subscription
        assert retained(after, "alert-state/late1", kept=True) == []
        assert daemon.stop() == 0
    finally:
        feed.close()


def test_a_restart_that_does_not_hold_an_open_alert_ends_it(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """cold1's `signal_lost` is open when the daemon stops; the next one starts without a
    snapshot (`state.snapshot` off here; the same for a snapshot too old or of another
    model, or a crash before the first checkpoint), so it does not watch that alert. Its
    outbox file kept the open alerts: the restart ends it with an `expired` event and
    deletes cold1's state message. Before (ba68fe7) it stayed open at every consumer
    forever."""
    env = {
        "MONITOR_WINDOW__STALE_AFTER_S": "1.0",
        "MONITOR_STATE__SNAPSHOT": "false",
        "MONITOR_ALERTS__OUTBOX_PATH": str(tmp_path / "outbox.sqlite3"),
    }
    alerts = listener_factory(mosquitto.port)
    station = listener_factory(mosquitto.port, "alert-state/#")
    first = serving(mosquitto, model_dir, tmp_path / "first.log", env)
    feed = Feed(mosquitto.url, "cold", patients=2)
    try:
        feed.send(20)
        feed.ids = ["cold0"]

        def lost() -> bool:
            feed.send(1)
            time.sleep(0.1)
            shown = retained(station, "alert-state/cold1")[-1:]
            return bool(shown) and ("technical", "signal_lost", "raised") in reasons(shown[0])

        assert eventually(lost, 20.0), first.log_text()
        assert first.stop() == 0
        shown = reasons(retained(station, "alert-state/cold1")[-1])

        second = serving(mosquitto, model_dir, tmp_path / "second.log", env)
        assert eventually(lambda: retained(station, "alert-state/cold1")[-1:] == [b""], 10.0)
        assert alerts.changes("signal_lost") == [
            ("technical", "signal_lost", "raised", "high", "cold1"),
            ("technical", "signal_lost", "expired", "high", "cold1"),
        ]
        # Every alert it showed open ends (a physiological episode open too, if any).
        ended = [
            (e["kind"], e["reason"])
            for e in alerts.events()
            if e["patient_id"] == "cold1" and e["state"] == "expired"
        ]
        assert sorted(ended) == sorted((kind, reason) for kind, reason, _ in shown)
        ended_all = [e for e in alerts.events() if e["state"] == "expired"]
        expired = [e for e in second.log_events() if e.get("event") == "alerts_expired"]
        assert [(e["count"], e["why"]) for e in expired] == [(len(ended_all), "not_held")]
        assert second.stop() == 0
    finally:
        feed.close()


def offline(payload: bytes) -> bool:
    """A system-wide state message saying monitoring is offline."""
    return bool(payload) and reasons(payload) == [("technical", "monitor_offline", "raised")]


def test_a_daemon_that_is_gone_shows_monitoring_offline_to_every_consumer(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, listener_factory: Callable[..., Listener]
) -> None:
    """SIGKILL: the broker publishes the daemon's last will, the system-wide state message
    with `monitor_offline` (high), retained, so a consumer connecting afterwards sees it too.
    The restarted daemon replaces it (an empty message: nothing open system-wide). A
    graceful stop publishes it itself. Before (ba68fe7) a dead daemon was silence on every
    alert topic: only Prometheus (`VitalsMonitorDown`) could tell."""
    station = listener_factory(mosquitto.port, "alert-state/#")
    system = "alert-state/_system"
    first = serving(mosquitto, model_dir, tmp_path / "first.log", {})
    assert eventually(lambda: retained(station, system)[-1:] == [b""], 10.0)
    assert first.stop(signal.SIGKILL) == -signal.SIGKILL
    assert eventually(lambda: offline(retained(station, system)[-1]), 10.0)
    late = listener_factory(mosquitto.port, "alert-state/#")
    assert eventually(lambda: bool(retained(late, system, kept=True)), 10.0)
    assert offline(retained(late, system, kept=True)[0])

    second = serving(mosquitto, model_dir, tmp_path / "second.log", {})
    assert eventually(lambda: retained(station, system)[-1:] == [b""], 10.0)
    assert second.stop() == 0  # graceful: the daemon says it itself
    assert eventually(lambda: offline(retained(station, system)[-1]), 10.0)


def test_a_held_daemon_shows_monitoring_offline_once_the_broker_drops_it(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path, listener_factory: Callable[..., Listener]
) -> None:
    """A held event loop sends no keepalive: the broker drops the connection after 1.5
    keepalives and publishes the last will. Before (ba68fe7) a held loop could tell no
    consumer anything (the docs' "a held loop cannot raise its own alert")."""
    flag = tmp_path / "block-loop"
    station = listener_factory(mosquitto.port, "alert-state/#")
    daemon = Daemon(
        mosquitto.url, model_dir, env={"MONITOR_BROKER__KEEPALIVE": "2"}, block_loop_while=flag
    )
    daemon.start(tmp_path / "daemon.log")
    daemon.wait_ready()
    system = "alert-state/_system"
    assert eventually(lambda: retained(station, system)[-1:] == [b""], 10.0)
    flag.touch()
    held_at = time.monotonic()
    assert eventually(lambda: offline(retained(station, system)[-1]), 15.0)
    assert time.monotonic() - held_at >= 2.0  # the broker waited for the keepalive
    flag.unlink()
    assert daemon.stop() == 0
