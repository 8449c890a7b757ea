"""deploy/mosquitto: per-topic ACLs and password authentication, on a real Mosquitto."""

from __future__ import annotations

import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from tests.deploy.contract import ACL, DEPLOY
from tests.support.mosquitto import Mosquitto, free_port, wait_for_port

pytestmark = [
    pytest.mark.mqtt,
    pytest.mark.skipif(shutil.which("mosquitto_passwd") is None, reason="make system-deps"),
]
NOT_AUTHORIZED = 135


def write_password_file(path: Path, passwords: dict[str, str]) -> None:
    """Create a Mosquitto password file with `mosquitto_passwd -b`, as docs/deploy.md shows."""
    for i, (user, password) in enumerate(passwords.items()):
        create = ["-c"] if i == 0 else []
        subprocess.run(
            ["mosquitto_passwd", "-b", *create, str(path), user, password], check=True, timeout=30
        )


@dataclass
class Client:
    """A connected paho client that records what it receives and every PUBACK reason code."""

    paho: mqtt.Client
    received: list[tuple[str, bytes]] = field(default_factory=list)
    pubacks: dict[int, int] = field(default_factory=dict)

    def publish(self, topic: str, payload: bytes, retain: bool = False) -> int:
        """Publish with QoS 1, wait for the PUBACK and return its reason code."""
        info = self.paho.publish(topic, payload, qos=1, retain=retain)
        info.wait_for_publish(timeout=5)
        return self.pubacks[info.mid]

    def close(self) -> None:
        """Disconnect and stop the network thread."""
        self.paho.disconnect()
        self.paho.loop_stop()


def connect(port: int, user: str | None, password: str = "") -> tuple[int, Client]:
    """Connect with MQTT v5 (anonymously when `user` is None); return CONNACK's code and client."""
    paho = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    if user is not None:
        paho.username_pw_set(user, password)
    client = Client(paho)
    connack: list[int] = []
    done = threading.Event()

    def on_connect(_c: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        connack.append(rc.value)
        done.set()

    def on_publish(_c: mqtt.Client, _u: object, mid: int, rc: ReasonCode, _p: object) -> None:
        client.pubacks[mid] = rc.value

    paho.on_connect = on_connect
    paho.on_publish = on_publish
    paho.on_message = lambda _c, _u, msg: client.received.append((msg.topic, msg.payload))
    paho.connect("127.0.0.1", port)
    paho.loop_start()
    assert done.wait(5), f"no CONNACK for {user}"
    return connack[0], client


def subscribe(client: Client, topic: str) -> None:
    """Subscribe with QoS 1 and wait for the SUBACK.

    Also a barrier: the broker writes to a connection in order and paho handles what it reads
    in order, so every message routed to `client` before this call has been recorded on return.
    """
    done = threading.Event()
    client.paho.on_subscribe = lambda *_: done.set()
    client.paho.subscribe(topic, qos=1)
    assert done.wait(5)


@pytest.fixture
def passwords() -> dict[str, str]:
    """A fresh random password for every account of the deploy ACL file."""
    users = re.findall(r"^user (\S+)$", ACL.read_text(), flags=re.MULTILINE)
    assert users == ["monitor", "simulator", "device", "alerts-reader"]
    return {user: secrets.token_urlsafe(12) for user in users}


@pytest.fixture
def broker(tmp_path: Path, passwords: dict[str, str]) -> Iterator[Mosquitto]:
    """Mosquitto with deploy's ACL file, a generated password file and no anonymous access."""
    password_file = tmp_path / "passwd"
    write_password_file(password_file, passwords)
    server = Mosquitto(
        workdir=tmp_path / "mosquitto",
        allow_anonymous=False,
        extra_config=f"password_file {password_file}\nacl_file {ACL}",
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def clients(broker: Mosquitto, passwords: dict[str, str]) -> Iterator[dict[str, Client]]:
    """Every account connected; the daemon and the reader subscribed to what they read."""
    connected = {}
    for user in ("monitor", "simulator", "device", "alerts-reader"):
        rc, connected[user] = connect(broker.port, user, passwords[user])
        assert rc == 0
    subscribe(connected["monitor"], "vitals/#")
    subscribe(connected["alerts-reader"], "alerts/#")
    # Devices may subscribe, but the broker delivers them nothing they may not read.
    subscribe(connected["device"], "#")
    try:
        yield connected
    finally:
        for client in connected.values():
            client.close()


@pytest.mark.parametrize("user", ["device", "simulator"])
def test_device_writes_vitals_only(clients: dict[str, Client], user: str) -> None:
    """A device's vitals reach the daemon; its alert is refused and never reaches a reader."""
    device = clients[user]
    assert device.publish("alerts/p1", b"forged alert") == NOT_AUTHORIZED
    assert device.publish("vitals/p1", b"sample") == 0
    assert clients["monitor"].publish("alerts/p1", b"real alert") == 0
    subscribe(clients["alerts-reader"], "alerts/#")
    subscribe(clients["monitor"], "vitals/#")
    assert clients["alerts-reader"].received == [("alerts/p1", b"real alert")]
    assert clients["monitor"].received == [("vitals/p1", b"sample")]


def test_daemon_reads_vitals_and_writes_alerts_only(clients: dict[str, Client]) -> None:
    """The daemon may publish alerts, not vitals; devices read nothing, not even with `#`."""
    monitor = clients["monitor"]
    assert monitor.publish("vitals/p2", b"forged sample") == NOT_AUTHORIZED
    assert monitor.publish("alerts/p2", b"alert") == 0
    assert clients["device"].publish("vitals/p2", b"sample") == 0
    for client, topic in [(monitor, "vitals/#"), (clients["device"], "#")]:
        subscribe(client, topic)
    assert monitor.received == [("vitals/p2", b"sample")]
    assert clients["alerts-reader"].received == [("alerts/p2", b"alert")]
    assert clients["device"].received == []


def test_daemon_writes_the_open_alerts_and_the_reader_reads_them(
    clients: dict[str, Client],
) -> None:
    """The daemon's retained state message (docs/alerts.md, "Open alerts") reaches a
    reader that subscribes afterwards; a device cannot forge one, nor read it."""
    assert clients["device"].publish("alert-state/p3", b"forged", retain=True) == NOT_AUTHORIZED
    assert clients["monitor"].publish("alert-state/p3", b"open", retain=True) == 0
    subscribe(clients["alerts-reader"], "alert-state/#")
    deadline = time.monotonic() + 5  # retained messages follow the SUBACK
    while not clients["alerts-reader"].received and time.monotonic() < deadline:
        time.sleep(0.05)
    assert clients["alerts-reader"].received == [("alert-state/p3", b"open")]
    assert ("alert-state/p3", b"open") not in clients["device"].received


def test_wrong_password_and_unknown_user_are_refused(
    broker: Mosquitto, passwords: dict[str, str]
) -> None:
    """A wrong password, an unknown user and an empty password get CONNACK 'Not authorized'."""
    for user, password in [
        ("monitor", "wrong"),
        ("intruder", passwords["monitor"]),
        ("device", ""),
    ]:
        rc, client = connect(broker.port, user, password)
        client.close()
        assert rc == NOT_AUTHORIZED, user


def test_deploy_config_starts_with_persistence_and_no_anonymous(
    tmp_path: Path, passwords: dict[str, str]
) -> None:
    """deploy/mosquitto/mosquitto.conf, with its container paths mapped here, runs Mosquitto:
    anonymous clients are refused, accounts work, and persistence is saved on shutdown."""
    write_password_file(tmp_path / "passwd", passwords)
    port = free_port()
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    mapped = (
        conf.replace("listener 1883", f"listener {port} 127.0.0.1")
        .replace("/mosquitto/passwd/passwd", str(tmp_path / "passwd"))
        .replace("/mosquitto/config/acl", str(ACL))
        .replace("/mosquitto/data/", f"{tmp_path}/")
    )
    assert mapped.count(str(tmp_path)) == 2
    # As root, Mosquitto would switch to user `mosquitto`, who cannot write tmp_path.
    if os.geteuid() == 0:
        mapped = "user root\n" + mapped
    (tmp_path / "mosquitto.conf").write_text(mapped)
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    proc = subprocess.Popen(
        [binary, "-c", str(tmp_path / "mosquitto.conf")],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_port(port)
        rc_anonymous, client = connect(port, None)
        client.close()
        rc_monitor, client = connect(port, "monitor", passwords["monitor"])
        client.close()
    finally:
        proc.terminate()
        assert proc.wait(10) == 0
    assert (rc_anonymous, rc_monitor) == (NOT_AUTHORIZED, 0)
    assert (tmp_path / "mosquitto.db").stat().st_size > 0
