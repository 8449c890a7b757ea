"""A daemon killed without a graceful stop (SIGKILL, out of memory, a watchdog restart)
restarts from its last checkpoint, through a real Mosquitto and two daemon processes in
turn (docs/reliability.md, "Restarts with a patient-state snapshot")."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch

from monitor.core.vitals import CLINICAL_VITALS
from monitor.model.lstm import MedicalLSTM
from monitor.model.store import save_model
from tests.reliability.conftest import Feed, make_card
from tests.support.daemon import Daemon, eventually, settle, total
from tests.support.listener import Listener
from tests.support.mosquitto import Mosquitto

pytestmark = pytest.mark.mqtt


def started(
    mosquitto: Mosquitto,
    model: Path,
    log: Path,
    env: dict[str, str],
    fail_housekeeping_while: Path | None = None,
) -> Daemon:
    """A ready `monitor run` logging to `log` (`fail_housekeeping_while`: the test hook)."""
    daemon = Daemon(mosquitto.url, model, env=env, fail_housekeeping_while=fail_housekeeping_while)
    daemon.start(log)
    daemon.wait_ready()
    return daemon


def lines(daemon: Daemon, event: str) -> list[dict[str, Any]]:
    """The daemon's log lines of one event."""
    return [e for e in daemon.log_events() if e.get("event") == event]


def test_a_daemon_killed_and_restarted_goes_on_watching_its_patients(
    mosquitto: Mosquitto,
    model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """Two devices stream; crash1's goes quiet and gets `signal_lost`; the daemon writes a
    checkpoint (every second here) and is SIGKILLed. While it is down crash1's device comes
    back and crash0's dies. The restarted daemon restores both patients and crash1's open
    alert from the checkpoint: it clears crash1's `signal_lost` at its first sample, and
    raises crash0's 1 s (stale_after_s) after the restart, each once. Before (26c7766)
    nothing was written without a graceful stop: the restart was cold, crash0 went
    unwatched with no alert at all, and crash1's `signal_lost` was never cleared."""
    env = {
        "MONITOR_WINDOW__STALE_AFTER_S": "1.0",
        "MONITOR_STATE__SNAPSHOT_PATH": str(tmp_path / "patients.snapshot"),
        "MONITOR_STATE__CHECKPOINT_INTERVAL_S": "1.0",
    }
    alerts = listener_factory(mosquitto.port)
    first = started(mosquitto, model_dir, tmp_path / "first.log", env)
    feed = Feed(mosquitto.url, "crash", patients=2)

    def until(count: int) -> bool:
        feed.send(1)
        time.sleep(0.1)
        return len(alerts.changes("signal_lost")) >= count

    try:
        feed.send(20)
        feed.ids = ["crash0"]  # crash1's device goes quiet
        assert eventually(lambda: until(1), timeout=20.0), first.log_text()
        # A checkpoint written after the alert holds both patients and the open alert;
        # crash0 goes on meanwhile (silent past 1 s, it would have its own alert open).
        written = total(first.metrics(), "monitor_snapshot_writes_total", result="ok")

        def checkpointed() -> bool:
            until(1)
            samples = first.metrics()
            return total(samples, "monitor_snapshot_writes_total", result="ok") > written

        assert eventually(checkpointed, timeout=20.0), first.log_text()
        assert first.stop(signal.SIGKILL) == -signal.SIGKILL

        second = started(mosquitto, model_dir, tmp_path / "second.log", env)
        restored = lines(second, "snapshot_restored")
        assert [(e["patients"], e["alerts_open"]) for e in restored] == [(2, 1)]
        feed.ids = ["crash1"]  # crash1's device is back, crash0's died while it was down
        assert eventually(lambda: until(3), timeout=20.0), second.log_text()
        feed.send(10)
        assert alerts.changes("signal_lost") == [
            ("technical", "signal_lost", "raised", "high", "crash1"),
            ("technical", "signal_lost", "cleared", "high", "crash1"),
            ("technical", "signal_lost", "raised", "high", "crash0"),
        ]
        assert second.stop() == 0
    finally:
        feed.close()


def test_a_background_task_that_dies_stops_the_daemon_for_its_supervisor(
    mosquitto: Mosquitto, model_dir: Path, tmp_path: Path
) -> None:
    """A housekeeping pass raises (a bug in it; test hook, tests/support/slowed_run.py):
    the daemon logs `task_failed` naming the task and the error, stops gracefully on its
    own (its snapshot written) and exits with code 1, so that its supervisor restarts it
    (systemd `Restart=on-failure`, Kubernetes, Compose); the restart restores the
    patients. Before (26c7766) the task ended in silence and the daemon served on without
    housekeeping: no `signal_lost` for any patient, /readyz 200, until `/healthz` failed
    `metrics.stuck_after_s` (60 s) later; an alert publisher that died the same way was
    never noticed at all."""
    flag = tmp_path / "fail-housekeeping"
    env = {"MONITOR_STATE__SNAPSHOT_PATH": str(tmp_path / "patients.snapshot")}
    daemon = started(
        mosquitto, model_dir, tmp_path / "first.log", env, fail_housekeeping_while=flag
    )
    feed = Feed(mosquitto.url, "task", patients=2)
    try:
        feed.send(12)
        settle(daemon, feed.sent)
        flag.touch()
        assert daemon.proc is not None
        daemon.proc.wait(30)  # on its own
        assert daemon.stop() == 1
        assert [(e["task"], e["error"]) for e in lines(daemon, "task_failed")] == [
            ("housekeeping", "InjectedFault('injected housekeeping failure (test)')")
        ]
        assert [e["patients"] for e in lines(daemon, "snapshot_written")] == [2]
        assert [e["exit_code"] for e in lines(daemon, "stopped")] == [1]

        second = started(mosquitto, model_dir, tmp_path / "second.log", env)
        assert [e["patients"] for e in lines(second, "snapshot_restored")] == [2]
        assert second.stop() == 0
    finally:
        feed.close()


@pytest.fixture(scope="module")
def new_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's small random model as another version (a new model installed)."""
    torch.manual_seed(1)
    n = len(CLINICAL_VITALS)
    path = tmp_path_factory.mktemp("new-model")
    card = make_card().model_copy(update={"model_version": "1" * 64})
    save_model(path, MedicalLSTM(n, 8, 1, n), card)
    return path


def test_a_new_model_takes_over_the_patients_of_the_last_one(
    mosquitto: Mosquitto,
    model_dir: Path,
    new_model_dir: Path,
    tmp_path: Path,
    listener_factory: Callable[..., Listener],
) -> None:
    """Two devices stream; the daemon is stopped (SIGTERM: its snapshot written) and started
    again with a new model version. The new model's state cannot come from the file
    (`snapshot_refused reason=model_version`), but the patients do (`roster_restored
    patients=2`): crash1's device, dead since, gets `signal_lost` 1 s (stale_after_s)
    after the restart, and crash0's, which goes on, warms up again (`warming_up` raised,
    then cleared a window later). Before (26c7766) the start was cold: crash1 went
    unwatched with no alert at all."""
    env = {
        "MONITOR_WINDOW__STALE_AFTER_S": "1.0",
        "MONITOR_STATE__SNAPSHOT_PATH": str(tmp_path / "patients.snapshot"),
    }
    first = started(mosquitto, model_dir, tmp_path / "first.log", env)
    feed = Feed(mosquitto.url, "crash", patients=2)
    try:
        feed.send(20)
        settle(first, feed.sent)
        assert first.stop() == 0

        alerts = listener_factory(mosquitto.port)
        second = started(mosquitto, new_model_dir, tmp_path / "second.log", env)
        assert [e["reason"] for e in lines(second, "snapshot_refused")] == ["model_version"]
        assert [e["patients"] for e in lines(second, "roster_restored")] == [2]
        feed.ids = ["crash0"]

        def warmed() -> bool:
            feed.send(1)
            time.sleep(0.05)
            return len(alerts.changes("warming_up")) == 2

        assert eventually(warmed, timeout=20.0), second.log_text()
        assert eventually(lambda: bool(alerts.changes("signal_lost")))
        assert alerts.changes("signal_lost") == [
            ("technical", "signal_lost", "raised", "high", "crash1")
        ]
        assert [c[2] for c in alerts.changes("warming_up")] == ["raised", "cleared"]
        assert {c[4] for c in alerts.changes("warming_up")} == {"crash0"}
        assert second.stop() == 0
    finally:
        feed.close()
