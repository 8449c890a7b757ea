"""A single-node nats-server started by a test: JetStream, the MQTT listener and the
partition mapping of deploy/kubernetes/nats.yaml, on free loopback ports, without accounts."""

from __future__ import annotations

import asyncio
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from monitor.transports.nats.history import ensure_stream
from tests.support.mosquitto import free_port, wait_for_port

CONFIG = """\
server_name: test-nats
listen: 127.0.0.1:{client}
jetstream {{
  store_dir: "{store}"
  max_memory_store: 64MB
  max_file_store: 1GB
}}
mqtt {{
  listen: 127.0.0.1:{mqtt}
}}
mappings = {{
  "vitals.*": "vitals.{{{{partition({partitions},1)}}}}.{{{{wildcard(1)}}}}"
}}
"""


@dataclass
class NatsServer:
    """A nats-server process with its config and store in `workdir`.

    Attributes:
        workdir: Folder for the config, JetStream store and log.
        partitions: P of the mapping.
    """

    workdir: Path
    partitions: int = 64
    client_port: int = field(default_factory=free_port)
    mqtt_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The NATS client URL."""
        return f"nats://127.0.0.1:{self.client_port}"

    @property
    def mqtt_url(self) -> str:
        """The MQTT listener's URL."""
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def start(self, stream: str | None = "VITALS", max_msgs_per_subject: int = 1000) -> None:
        """Start the server and, unless `stream` is None, create the stream over vitals.*.*
        and the stream ALERTS over alerts.> (what the shards published)."""
        self.workdir.mkdir(parents=True, exist_ok=True)
        conf = self.workdir / "nats.conf"
        conf.write_text(
            CONFIG.format(
                client=self.client_port,
                mqtt=self.mqtt_port,
                store=self.workdir / "jetstream",
                partitions=self.partitions,
            )
        )
        with (self.workdir / "nats.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["nats-server", "-c", str(conf)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.client_port)
            wait_for_port(self.mqtt_port)
        except TimeoutError:
            self.stop()  # a server that failed to listen is not left running
            raise
        if stream is not None:
            asyncio.run(ensure_stream(self.url, stream, "vitals", max_msgs_per_subject))
            asyncio.run(ensure_stream(self.url, "ALERTS", subjects=["alerts.>"]))

    def stop(self) -> None:
        """Stop the server (SIGTERM) and wait for it."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)

    def log_text(self) -> str:
        """The server's log so far."""
        path = self.workdir / "nats.log"
        return path.read_text() if path.exists() else ""
