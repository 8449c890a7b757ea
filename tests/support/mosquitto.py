"""A real Mosquitto broker started by a test on a free loopback port.

Tests can stop it gracefully, kill it with SIGKILL and start it again on the same port.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Ports `free_port` handed out in this process: the OS may offer a port again once the
#: probe socket is closed, and two ports of one server (a NATS client and MQTT listener)
#: taken before it binds either must differ.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now, and that this
    process has not been given before."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    raise RuntimeError("no loopback port not handed out before")


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    """Block until something accepts TCP connections on host:port, or raise TimeoutError."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class Mosquitto:
    """A Mosquitto process bound to 127.0.0.1:port with a config written into workdir.

    Attributes:
        workdir: Folder for the config, persistence file and log.
        port: The listening port.
        extra_config: Lines appended to the generated config (TLS, passwords, ACLs).
        persistence: Keep sessions and queued messages across restarts.
    """

    workdir: Path
    port: int = field(default_factory=free_port)
    extra_config: str = ""
    persistence: bool = True
    allow_anonymous: bool = True
    listener_extra: str = ""
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The broker URL, ``mqtt://127.0.0.1:port``."""
        return f"mqtt://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        """Mosquitto's own log file."""
        return self.workdir / "mosquitto.log"

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "mosquitto.conf"
        lines = [
            # As root, Mosquitto would drop to user `mosquitto`, who cannot write workdir.
            "user root" if os.geteuid() == 0 else "",
            f"listener {self.port} 127.0.0.1",
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
            "set_tcp_nodelay true",
            f"persistence {'true' if self.persistence else 'false'}",
            f"persistence_location {self.workdir}/",
            "max_queued_messages 1000000",
            "max_inflight_messages 0",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            self.listener_extra,
            self.extra_config,
        ]
        conf.write_text("\n".join(line for line in lines if line) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> None:
        """Start the broker and wait until it accepts connections."""
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self._write_config()
        self.proc = subprocess.Popen(
            [binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        wait_for_port(self.port, timeout)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> None:
        """Stop the broker with `sig` (SIGTERM: graceful, saves persistence; SIGKILL: crash)."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def kill(self) -> None:
        """Crash the broker with SIGKILL (no persistence saved)."""
        self.stop(signal.SIGKILL)

    def restart(self, sig: int = signal.SIGTERM) -> None:
        """Stop with `sig`, then start again on the same port."""
        self.stop(sig)
        self.start()
