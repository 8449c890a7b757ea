"""`monitor run` with fault injection in every batched forward: made FACTOR times slower
(the overload test's daemon), and raising while a flag file exists (the inference-failure
test's). Fault injection lives in the tests, not in the production settings.

Usage: ``python -m tests.support.slowed_run FACTOR run <monitor run options>``; after each
forward the inference thread sleeps (FACTOR - 1) x the forward's duration, then raises
`InjectedFault` if the file named by the environment variable `FAIL_FORWARDS_WHILE` exists.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

# One OpenMP thread, set before torch is imported (as `monitor run` does).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from monitor.cli import main
from monitor.service import main as service
from monitor.service.app import Daemon
from monitor.settings import Settings

#: Environment variable naming the flag file: while it exists every forward raises.
FAIL_FLAG_ENV = "FAIL_FORWARDS_WHILE"


class InjectedFault(RuntimeError):
    """The forward failure a test asked for (a GPU fault, an out-of-memory error)."""


def slowed(factor: float, fail_while: Path | None = None) -> None:
    """Make the daemon that `monitor run` builds call a hook after each forward."""
    build = service.build_daemon

    def hook(duration_s: float) -> None:
        if factor != 1.0:
            time.sleep((factor - 1.0) * duration_s)
        if fail_while is not None and fail_while.exists():
            raise InjectedFault("injected forward failure (test)")

    def build_slowed(settings: Settings) -> Daemon:
        return build(settings, inference_hook=hook)

    service.build_daemon = build_slowed  # type: ignore[assignment]


if __name__ == "__main__":
    flag = os.environ.get(FAIL_FLAG_ENV)
    slowed(float(sys.argv.pop(1)), Path(flag) if flag else None)
    main()
