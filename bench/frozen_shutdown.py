"""Time `monitor run`'s shutdown with a frozen broker (docs/reliability.md).

Starts a Mosquitto and the daemon (shipped model), freezes the broker with SIGSTOP, sends
SIGTERM and prints the time to exit. Run from the repository root:
``PYTHONPATH=. python bench/frozen_shutdown.py``.
"""

from __future__ import annotations

import signal
import tempfile
import time
from pathlib import Path

from tests.support.daemon import Daemon
from tests.support.mosquitto import Mosquitto


def main() -> None:
    """Run the scenario once and print the figure."""
    work = Path(tempfile.mkdtemp())
    broker = Mosquitto(workdir=work / "mq")
    broker.start()
    daemon = Daemon(broker.url, None, env={"MONITOR_SHUTDOWN_GRACE_S": "10"})
    daemon.start(work / "daemon.log", timeout=60)
    daemon.wait_ready(30)
    assert broker.proc is not None
    broker.proc.send_signal(signal.SIGSTOP)
    time.sleep(1)
    t0 = time.monotonic()
    rc = daemon.stop(signal.SIGTERM, timeout=60)
    print(f"frozen broker: SIGTERM -> exit {time.monotonic() - t0:.2f} s, rc {rc}")
    broker.proc.send_signal(signal.SIGCONT)
    broker.stop()


if __name__ == "__main__":
    main()
