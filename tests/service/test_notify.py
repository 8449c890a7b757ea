"""systemd notifications: datagrams to $NOTIFY_SOCKET, a no-op without it, never raising."""

from __future__ import annotations

import socket
import tempfile
import time
from pathlib import Path

from structlog.testing import capture_logs

from monitor.service.notify import SystemdNotifier
from tests.support.daemon import eventually
from tests.support.notify import NotifySocket


def test_notifications_reach_an_abstract_socket() -> None:
    """`@name` is the abstract namespace (how systemd names its socket): each state is one
    datagram, in order."""
    manager = NotifySocket()
    notifier = SystemdNotifier({"NOTIFY_SOCKET": manager.address})
    try:
        assert notifier.enabled
        notifier.notify("READY=1")
        notifier.notify("WATCHDOG=1")
        assert eventually(lambda: len(manager.received()) == 2, timeout=5)
        assert manager.received() == ["READY=1", "WATCHDOG=1"]
    finally:
        notifier.close()
        manager.close()


def test_notifications_reach_a_socket_file() -> None:
    """A path (a manager that binds a file, as systemd did before the abstract namespace)."""
    with tempfile.TemporaryDirectory(dir="/tmp") as where:  # a short path: sun_path is 108
        path = str(Path(where) / "notify")
        manager = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        manager.bind(path)
        manager.settimeout(5)
        notifier = SystemdNotifier({"NOTIFY_SOCKET": path})
        try:
            notifier.notify("STOPPING=1")
            assert manager.recv(64) == b"STOPPING=1"
        finally:
            notifier.close()
            manager.close()


def test_without_a_socket_nothing_is_sent_and_a_missing_one_is_logged_once() -> None:
    """Not under systemd: disabled, a no-op. A socket that is gone (the manager restarted):
    one warning for a run of failures, nothing raised; a success ends the run, so the next
    failure warns again."""
    assert not SystemdNotifier({}).enabled
    SystemdNotifier({}).notify("READY=1")
    name = f"vitals-monitor-test-gone-{time.monotonic_ns()}"
    notifier = SystemdNotifier({"NOTIFY_SOCKET": "@" + name})
    try:
        with capture_logs() as logs:
            for _ in range(3):
                notifier.notify("WATCHDOG=1")
            back = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            back.bind("\0" + name)
            notifier.notify("WATCHDOG=1")
            back.settimeout(5)
            assert back.recv(64) == b"WATCHDOG=1"
            back.close()
            notifier.notify("WATCHDOG=1")
        assert [e["event"] for e in logs] == ["systemd_notify_failed"] * 2
    finally:
        notifier.close()
