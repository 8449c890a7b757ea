"""The NATS server of `monitor demo --shards N`: a nats-server process spawned on free loopback
ports, with JetStream, the MQTT listener and the partition mapping (as in
deploy/kubernetes/nats.yaml), its config, store and log in a temporary folder removed at stop."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from monitor.demo.broker import port_or_free
from monitor.errors import MonitorError
from monitor.transports.nats.history import ensure_stream

#: What `monitor demo --shards N` says when no nats-server is installed.
MISSING = (
    "monitor demo --shards needs nats-server on PATH: install it (Debian/Ubuntu: "
    "apt install nats-server; elsewhere: https://docs.nats.io) or run the demo without --shards"
)

# MQTT in nats-server needs a server_name and JetStream (its sessions live in streams).
_CONFIG = """\
server_name: monitor-demo
listen: {host}:{client}
jetstream {{
  store_dir: "{store}"
  max_memory_store: 64MB
  max_file_store: 1GB
}}
mqtt {{
  listen: {host}:{mqtt}
}}
mappings = {{
  "{prefix}.*": "{prefix}.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"
}}
"""


class NatsMissingError(MonitorError):
    """No nats-server executable on PATH."""


class SpawnedNats:
    """A nats-server for the demo.

    Args:
        partitions: P of the mapping (the shards' `shard.partitions`).
        host: Loopback address it listens on.
        prefix: The devices' topic prefix (`vitals`).
    """

    def __init__(self, partitions: int, host: str = "127.0.0.1", prefix: str = "vitals") -> None:
        self.partitions = partitions
        self.host = host
        self.prefix = prefix
        self.client_port = 0
        self.mqtt_port = 0
        self.workdir: Path | None = None
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The NATS client URL (window recovery)."""
        return f"nats://{self.host}:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        """The MQTT listener's URL (devices, shards, alert consumers)."""
        return f"mqtt://{self.host}:{self.mqtt_port}"

    async def start(self, timeout_s: float = 15.0) -> None:
        """Spawn the server, wait for both listeners, create the streams VITALS and ALERTS.

        Raises:
            NatsMissingError: nats-server is not on PATH.
            MonitorError: It exited or did not listen within `timeout_s`.
        """
        self._spawn()
        deadline = time.monotonic() + timeout_s
        for port in (self.client_port, self.mqtt_port):
            await self._wait_port(port, deadline)
        await ensure_stream(self.url, "VITALS", self.prefix)
        await ensure_stream(self.url, "ALERTS", subjects=["alerts.>"])

    def _spawn(self) -> None:
        """Write the config into a new temporary folder and start the process."""
        exe = shutil.which("nats-server")
        if exe is None:
            raise NatsMissingError(MISSING)
        self.workdir = Path(tempfile.mkdtemp(prefix="monitor-demo-nats-"))
        self.client_port = port_or_free(self.host, 0)
        self.mqtt_port = port_or_free(self.host, 0)
        conf = self.workdir / "nats.conf"
        conf.write_text(
            _CONFIG.format(
                host=self.host,
                client=self.client_port,
                mqtt=self.mqtt_port,
                store=self.workdir / "jetstream",
                prefix=self.prefix,
                partitions=self.partitions,
            )
        )
        with (self.workdir / "nats.log").open("ab") as log:
            self.proc = subprocess.Popen(
                [exe, "-c", str(conf)],
                stdout=log,
                stderr=subprocess.STDOUT,
                # Its own process group: Ctrl-C reaches the demo, which stops it in order.
                start_new_session=True,
            )

    async def _wait_port(self, port: int, deadline: float) -> None:
        while True:
            if self.proc is not None and self.proc.poll() is not None:
                raise MonitorError(f"nats-server exited at start: {self.log_tail()}")
            try:
                _, writer = await asyncio.open_connection(self.host, port)
            except OSError:
                if time.monotonic() > deadline:
                    raise MonitorError(
                        f"nats-server did not listen on {self.host}:{port}: {self.log_tail()}"
                    ) from None
                await asyncio.sleep(0.05)
                continue
            writer.close()
            await writer.wait_closed()
            return

    def log_tail(self, chars: int = 500) -> str:
        """The end of the server's log (why it failed)."""
        path = None if self.workdir is None else self.workdir / "nats.log"
        if path is None or not path.exists():
            return ""
        return path.read_text(errors="replace")[-chars:].strip()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL after 10 s) and remove its folder."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None
