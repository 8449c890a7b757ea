"""A stand-in for systemd's notification socket: what a `Type=notify` unit's manager
receives ($NOTIFY_SOCKET, sd_notify(3)), with the time each datagram arrived."""

from __future__ import annotations

import os
import socket
import threading
import time


class NotifySocket:
    """A datagram socket in the abstract namespace, read by a thread until `close`.

    Attributes:
        address: The value for $NOTIFY_SOCKET (``@`` + the abstract name).
    """

    def __init__(self) -> None:
        name = f"vitals-monitor-test-{os.getpid()}-{id(self)}"
        self.address = "@" + name
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._sock.bind("\0" + name)
        self._sock.settimeout(0.1)
        self._got: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="notify-socket", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._got.append((time.monotonic(), data.decode()))

    def received(self, since: float = float("-inf")) -> list[str]:
        """The datagrams received at or after `since` (monotonic), in order."""
        with self._lock:
            return [message for at, message in self._got if at >= since]

    def close(self) -> None:
        """Stop reading and release the socket."""
        self._closed.set()
        self._thread.join(timeout=2)
        self._sock.close()
