"""`monitor run` with every batched forward made FACTOR times slower: the overload test's
daemon (fault injection lives in the tests, not in the production settings).

Usage: ``python -m tests.support.slowed_run FACTOR run <monitor run options>``; after each
forward the inference thread sleeps (FACTOR - 1) x the forward's duration.
"""

from __future__ import annotations

import os
import sys
import time

# One OpenMP thread, set before torch is imported (as `monitor run` does).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from monitor.cli import main
from monitor.service import main as service
from monitor.service.app import Daemon
from monitor.settings import Settings


def slowed(factor: float) -> None:
    """Make the daemon that `monitor run` builds call a hook that slows each forward."""
    build = service.build_daemon

    def hook(duration_s: float) -> None:
        time.sleep((factor - 1.0) * duration_s)

    def build_slowed(settings: Settings) -> Daemon:
        return build(settings, inference_hook=hook)

    service.build_daemon = build_slowed  # type: ignore[assignment]


if __name__ == "__main__":
    slowed(float(sys.argv.pop(1)))
    main()
