"""A broker that refuses the daemon's subscription (a NATS account without subscribe
permission on the vitals): the daemon must not go live on a subscription that delivers
nothing."""

from __future__ import annotations

import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.publisher import SyncPublisher
from tests.reliability.conftest import payload
from tests.support.daemon import Daemon, eventually, total
from tests.support.mosquitto import free_port, wait_for_port

pytestmark = pytest.mark.mqtt

CONFIG = """\
server_name: acl-nats
listen: 127.0.0.1:{client}
jetstream {{ store_dir: "{store}" }}
mqtt {{ listen: 127.0.0.1:{mqtt} }}
authorization {{
  users = [
    {{user: monitor, password: m-secret, permissions: {{
      publish: ["alerts.>", "$MQTT.>"],
      subscribe: [{read}"alerts.>", "$MQTT.>", "_INBOX.>"]}}}},
    {{user: device, password: d-secret, permissions: {{
      publish: ["vitals.>", "$MQTT.>"], subscribe: ["$MQTT.>", "_INBOX.>"]}}}}
  ]
}}
"""


class AclNats:
    """nats-server with an MQTT listener and per-user permissions; `grant_vitals` gives
    the daemon's account its missing read permission (the config reloaded on SIGHUP)."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.client_port, self.mqtt_port = free_port(), free_port()
        self.conf = workdir / "nats.conf"
        self.proc: subprocess.Popen[bytes] | None = None

    def write(self, read_vitals: bool) -> None:
        read = '"vitals.>", ' if read_vitals else ""
        self.conf.write_text(
            CONFIG.format(
                client=self.client_port,
                mqtt=self.mqtt_port,
                store=self.workdir / "js",
                read=read,
            )
        )

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.write(read_vitals=False)
        with (self.workdir / "nats.log").open("ab") as log:
            self.proc = subprocess.Popen(
                ["nats-server", "-c", str(self.conf)], stdout=log, stderr=subprocess.STDOUT
            )
        try:
            wait_for_port(self.client_port)
            wait_for_port(self.mqtt_port)
        except TimeoutError:
            self.stop()
            raise

    def grant_vitals(self) -> None:
        self.write(read_vitals=True)
        assert self.proc is not None
        self.proc.send_signal(signal.SIGHUP)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


@pytest.fixture
def acl_nats(tmp_path: Path) -> Iterator[AclNats]:
    if shutil.which("nats-server") is None:
        pytest.skip("no nats-server")
    server = AclNats(tmp_path / "nats")
    server.start()
    yield server
    server.stop()


def test_a_refused_subscription_is_a_refusal_not_a_live_daemon(
    acl_nats: AclNats, tmp_path: Path
) -> None:
    """NATS answers the daemon's SUBACK for `vitals/+` with 0x80 (its account may not
    subscribe to `vitals.>`). The daemon logs `broker_refused` naming the subscription,
    stays not ready (/readyz 503, `monitor_mqtt_connected` 0) and tries again after
    `ingest.refused_retry_s`; once the permission is granted (config reloaded) it
    subscribes, is ready and receives a device's samples. Before, it logged `subscribed`,
    answered /readyz 200 and received nothing: every patient unwatched in silence."""
    daemon = Daemon(
        f"mqtt://127.0.0.1:{acl_nats.mqtt_port}",
        args=["--username", "monitor"],
        env={"MONITOR_BROKER__PASSWORD": "m-secret", "MONITOR_INGEST__REFUSED_RETRY_S": "1"},
    )
    daemon.start(tmp_path / "daemon.log")

    def refusals() -> list[str]:
        return [
            str(e.get("error")) for e in daemon.log_events() if e.get("event") == "broker_refused"
        ]

    assert eventually(lambda: len(refusals()) >= 2)
    assert "refused the subscription to 'vitals/+'" in refusals()[0]
    assert daemon.http_status("/readyz") == 503
    assert total(daemon.metrics(), "monitor_mqtt_connected") == 0
    assert not [e for e in daemon.log_events() if e.get("event") == "subscribed"]
    acl_nats.grant_vitals()
    daemon.wait_ready(timeout=30)
    device = SyncPublisher(
        BrokerConfig(url=f"mqtt://device:d-secret@127.0.0.1:{acl_nats.mqtt_port}", protocol="3.1.1")
    )
    device.connect()
    for seq in range(5):
        device.publish("vitals/sr1", payload("sr1", seq), qos=1)
    daemon.wait_for("monitor_received_total", 5)
    device.close()
    assert daemon.stop() == 0
