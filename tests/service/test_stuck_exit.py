"""`StuckExit`: a daemon that makes no progress for `metrics.stuck_exit_s` ends itself, for
a supervisor that restarts on exit only (Docker Compose)."""

from __future__ import annotations

import threading
import time

from structlog.testing import capture_logs

from monitor.service.stuck_exit import EXIT_STUCK, StuckExit
from monitor.settings import Settings


def test_a_daemon_stuck_for_the_limit_exits_with_its_code_and_one_line() -> None:
    """Failing liveness for less than the limit (then alive again) does nothing; failing
    for the limit ends the process once, with `EXIT_STUCK`, after a `stuck_exit` line."""
    alive = threading.Event()
    alive.set()
    exited: list[int] = []
    done = threading.Event()

    def end(code: int) -> None:
        exited.append(code)
        done.set()

    watch = StuckExit(alive.is_set, after_s=0.3, exit=end, tick_s=0.02)
    with capture_logs() as logs:
        watch.start()
        alive.clear()
        time.sleep(0.15)  # stuck, under the limit
        alive.set()
        time.sleep(0.1)
        assert exited == []
        alive.clear()  # stuck again: the count starts over
        t0 = time.monotonic()
        assert done.wait(3.0)
        assert time.monotonic() - t0 >= 0.3
        watch.stop()
    assert exited == [EXIT_STUCK] == [3]
    assert [(e["event"], e["exit_code"]) for e in logs] == [("stuck_exit", 3)]


def test_a_stopped_watch_never_exits() -> None:
    """A graceful stop stops the watch first: a stop that outlasts the limit (its
    housekeeping already cancelled) is not cut short."""
    exited: list[int] = []
    watch = StuckExit(lambda: False, after_s=0.2, exit=exited.append, tick_s=0.02)
    watch.start()
    watch.stop()
    time.sleep(0.4)
    assert exited == []


def test_it_is_off_unless_set() -> None:
    """systemd and Kubernetes restart a stuck daemon themselves: off by default."""
    assert Settings().metrics.stuck_exit_s is None
    assert Settings(metrics={"stuck_exit_s": 30}).metrics.stuck_exit_s == 30
