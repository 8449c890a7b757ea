"""systemd's service notifications (sd_notify(3)): the daemon tells a ``Type=notify`` unit
that it serves (``READY=1``), that it makes progress (``WATCHDOG=1``, at every housekeeping
pass while `Daemon.is_alive`) and that it is stopping (``STOPPING=1``). With ``WatchdogSec=``
set, systemd kills and restarts a daemon whose pings stop: a held event loop, or a model
forward hung for `metrics.stuck_after_s`. Outside systemd ($NOTIFY_SOCKET unset) it does
nothing.

The protocol is one datagram of ``KEY=VALUE`` lines to the AF_UNIX socket named by
$NOTIFY_SOCKET (a leading ``@``: the abstract namespace), part of systemd's documented
interface-stability promise. It is a dozen lines over the standard library: the packages
that wrap it are either unmaintained (``sdnotify``, last release 2017) or need libsystemd's
headers to build (``systemd-python``).
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

__all__ = ["SystemdNotifier"]

log = structlog.get_logger("monitor.notify")


class SystemdNotifier:
    """Send service state to systemd, when the process runs under it.

    Args:
        environ: Where $NOTIFY_SOCKET is read (the process environment).
    """

    def __init__(self, environ: Mapping[str, str] = os.environ) -> None:
        name = environ.get("NOTIFY_SOCKET", "")
        self._address = "\0" + name[1:] if name.startswith("@") else name
        self._sock: socket.socket | None = None
        self._failing = False
        if name:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        """Running under a supervisor that listens ($NOTIFY_SOCKET set)."""
        return self._sock is not None

    def notify(self, state: str) -> None:
        """Send `state` (``READY=1``, ``WATCHDOG=1``, ...); a failure is logged once per run
        of failures and never raised (the supervisor's watchdog, if any, then acts)."""
        if self._sock is None:
            return
        try:
            self._sock.sendto(state.encode(), self._address)
        except OSError as exc:
            if not self._failing:
                log.warning("systemd_notify_failed", error=str(exc), socket=self._address)
            self._failing = True
        else:
            self._failing = False

    def close(self) -> None:
        """Release the socket."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None
