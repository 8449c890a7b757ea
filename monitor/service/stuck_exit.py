"""The last resort of a daemon that makes no progress: exit, for a supervisor to restart it.

A held event loop or a hung model forward can only be ended by a restart (docs/alerts.md,
"Liveness"). systemd (`WatchdogSec=`) and Kubernetes (the liveness probe on /healthz) do
it; Docker Compose restarts a container whose process exits, never one whose health check
fails. With `metrics.stuck_exit_s` set, a watch thread (the loop may be the thing held)
reads the daemon's liveness every half second and, once it has been failing for that long,
logs ``stuck_exit`` and ends the process with `EXIT_STUCK` at once (`os._exit`: no graceful
stop can run on a held loop). The alert outbox survives it (SQLite WAL); the patients come
back from the last checkpoint (`state.checkpoint_interval_s`).
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable

import structlog

__all__ = ["EXIT_STUCK", "StuckExit"]

log = structlog.get_logger("monitor")

#: The exit code of a daemon that ended itself for making no progress.
EXIT_STUCK = 3


class StuckExit:
    """Ends the process once `is_alive` has been false for `after_s` seconds.

    Args:
        is_alive: The daemon's liveness (`Daemon.is_alive`: thread-safe reads).
        after_s: How long it may fail before the process ends.
        exit: Ends the process (`os._exit`; a test passes its own).
        clock: Monotonic seconds.
        tick_s: How often liveness is read.
    """

    def __init__(
        self,
        is_alive: Callable[[], bool],
        after_s: float,
        exit: Callable[[int], object] = os._exit,
        clock: Callable[[], float] = time.monotonic,
        tick_s: float = 0.5,
    ) -> None:
        self._is_alive = is_alive
        self._after_s = after_s
        self._exit = exit
        self._clock = clock
        self._tick_s = tick_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="stuck-exit", daemon=True)

    def start(self) -> None:
        """Start watching."""
        self._thread.start()

    def stop(self) -> None:
        """Stop watching (a graceful stop under way)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _watch(self) -> None:
        since: float | None = None
        while not self._stop.wait(self._tick_s):
            if self._is_alive():
                since = None
                continue
            now = self._clock()
            since = now if since is None else since
            if now - since >= self._after_s:
                log.critical("stuck_exit", failing_s=round(now - since, 1), exit_code=EXIT_STUCK)
                sys.stdout.flush()
                sys.stderr.flush()
                self._exit(EXIT_STUCK)
                return
