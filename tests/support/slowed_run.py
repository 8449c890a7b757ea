"""`monitor run` with fault injection: every batched forward made FACTOR times slower (the
overload test's daemon), raising or hanging while a flag file exists (the inference-failure
and stall tests'), and the event loop blocked while one exists (the liveness test's). Fault
injection lives in the tests, not in the production settings.

Usage: ``python -m tests.support.slowed_run FACTOR run <monitor run options>``; after each
forward the inference thread sleeps (FACTOR - 1) x the forward's duration, then waits while
the file named by the environment variable `HANG_FORWARDS_WHILE` exists, then raises
`InjectedFault` if the file named by `FAIL_FORWARDS_WHILE` exists. While the file named by
`BLOCK_LOOP_WHILE` exists, a callback holds the daemon's event loop; while the one named by
`FAIL_ALERTS_WHILE` exists, every alert publication raises in the client; and while the one
named by `FAIL_HOUSEKEEPING_WHILE` exists, a housekeeping pass raises (a bug in it).
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

# One OpenMP thread, set before torch is imported (as `monitor run` does).
os.environ.setdefault("OMP_NUM_THREADS", "1")

from monitor.cli import main
from monitor.engine.transport import AlertPublisher
from monitor.service import main as service
from monitor.service.app import Daemon
from monitor.settings import Settings

#: Environment variable naming the flag file: while it exists every forward raises.
FAIL_FLAG_ENV = "FAIL_FORWARDS_WHILE"
#: ... every forward hangs (a hung GPU kernel, a deadlocked thread) until it is removed.
HANG_FLAG_ENV = "HANG_FORWARDS_WHILE"
#: ... the event loop is held (a blocking call on it) until it is removed.
BLOCK_FLAG_ENV = "BLOCK_LOOP_WHILE"
#: ... every alert publication raises in the client (a library fault) until it is removed.
FAIL_ALERTS_FLAG_ENV = "FAIL_ALERTS_WHILE"
#: ... a housekeeping pass raises (a bug in it) until it is removed.
FAIL_HOUSEKEEPING_FLAG_ENV = "FAIL_HOUSEKEEPING_WHILE"
_POLL_S = 0.05


class InjectedFault(RuntimeError):
    """The forward failure a test asked for (a GPU fault, an out-of-memory error)."""


def _flag(env: str) -> Path | None:
    name = os.environ.get(env)
    return Path(name) if name else None


class _FailingPublisher:
    """An alert publisher whose every publication raises while a flag file exists."""

    def __init__(self, inner: AlertPublisher, flag: Path) -> None:
        self.inner, self.flag = inner, flag

    async def publish(self, address: str, payload: bytes, retain: bool = False) -> bool:
        if self.flag.exists():
            raise InjectedFault("injected alert publication failure (test)")
        return await self.inner.publish(address, payload)


def _wait_while(flag: Path | None) -> None:
    while flag is not None and flag.exists():
        time.sleep(_POLL_S)


def slowed(factor: float) -> None:
    """Make the daemon that `monitor run` builds call a hook after each forward (and hold
    its event loop while asked to)."""
    build = service.build_daemon
    fail_while, hang_while = _flag(FAIL_FLAG_ENV), _flag(HANG_FLAG_ENV)
    block_while = _flag(BLOCK_FLAG_ENV)
    fail_alerts_while = _flag(FAIL_ALERTS_FLAG_ENV)
    fail_housekeeping_while = _flag(FAIL_HOUSEKEEPING_FLAG_ENV)

    def hook(duration_s: float) -> None:
        if factor != 1.0:
            time.sleep((factor - 1.0) * duration_s)
        _wait_while(hang_while)
        if fail_while is not None and fail_while.exists():
            raise InjectedFault("injected forward failure (test)")

    def build_slowed(settings: Settings) -> Daemon:
        daemon = build(settings, inference_hook=hook)
        if fail_alerts_while is not None:
            connected = daemon.connected

            def connected_failing(publisher: AlertPublisher) -> None:
                connected(_FailingPublisher(publisher, fail_alerts_while))

            daemon.connected = connected_failing  # type: ignore[method-assign]
        if fail_housekeeping_while is not None:
            check = daemon._check_forward  # the first step of every housekeeping pass
            flag = fail_housekeeping_while

            def check_failing() -> None:
                if flag.exists():
                    raise InjectedFault("injected housekeeping failure (test)")
                check()

            daemon._check_forward = check_failing  # type: ignore[method-assign]
        if block_while is not None:
            serve = daemon.serve

            async def serve_blockable() -> int:
                async def hold() -> None:
                    while True:
                        await asyncio.sleep(_POLL_S)
                        _wait_while(block_while)  # blocks the loop: no task runs meanwhile

                holder = asyncio.create_task(hold())
                try:
                    return await serve()
                finally:
                    holder.cancel()

            daemon.serve = serve_blockable  # type: ignore[method-assign]
        return daemon

    service.build_daemon = build_slowed  # type: ignore[assignment]


if __name__ == "__main__":
    slowed(float(sys.argv.pop(1)))
    main()
