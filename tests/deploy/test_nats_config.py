"""The NATS configuration of deploy/kubernetes at work: `nats-server -t` accepts it, and one
server running it maps devices' plain `vitals/<id>` topics to their partitions over MQTT and
keeps the device account from reading vitals."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest

from tests.deploy.kube import NATS_ENV, nats_conf
from tests.support.mosquitto import free_port, wait_for_port

pytestmark = pytest.mark.skipif(shutil.which("nats-server") is None, reason="no nats-server")


def test_nats_server_accepts_the_config(tmp_path: Path) -> None:
    """`nats-server -t` parses the ConfigMap's nats.conf, mapping included."""
    conf = tmp_path / "nats.conf"
    conf.write_text(nats_conf())
    done = subprocess.run(
        ["nats-server", "-t", "-c", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, **NATS_ENV},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "is valid" in done.stdout + done.stderr


def fnv1a_32(text: str) -> int:
    """FNV-1a, 32 bits: the hash of NATS's `partition()` mapping function."""
    h = 0x811C9DC5
    for byte in text.encode():
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def _single_node(conf: str, workdir: Path, ports: dict[int, int]) -> str:
    """The cluster's config on one node: no routes, loopback ports, a local store."""
    conf = re.sub(r"\ncluster \{.*?\n\}\n", "\n", conf, flags=re.S)
    for default, port in ports.items():
        conf = conf.replace(f"0.0.0.0:{default}", f"127.0.0.1:{port}")
    conf = conf.replace("/data/jetstream", str(workdir / "jetstream"))
    return conf.replace("/var/run/nats/nats.pid", str(workdir / "nats.pid"))


@pytest.fixture
def nats_mqtt(tmp_path: Path) -> Iterator[int]:
    """nats-server on one node with the ConfigMap's MQTT, JetStream, mapping and accounts.

    Yields the MQTT port.
    """
    ports = {default: free_port() for default in (4222, 8222, 1883)}
    conf = tmp_path / "nats.conf"
    conf.write_text(_single_node(nats_conf(), tmp_path, ports))
    with (tmp_path / "nats.log").open("wb") as log:
        proc = subprocess.Popen(
            ["nats-server", "-c", str(conf)],
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **NATS_ENV},
        )
    try:
        wait_for_port(ports[1883])
        yield ports[1883]
    finally:
        proc.terminate()
        proc.wait(10)


class _Client:
    """A paho MQTT 3.1.1 client with an account, collecting what it receives."""

    def __init__(self, port: int, user: str, password: str) -> None:
        self.received: list[str] = []
        self.granted: list[int] = []
        self._subscribed = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=f"test-{user}", protocol=paho.MQTTv311
        )
        self.client.username_pw_set(user, password)
        self.client.on_message = lambda _c, _u, m: self.received.append(m.topic)
        self.client.on_subscribe = self._on_subscribe
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[Any], _p: Any) -> None:
        self.granted = [int(code.value) for code in codes]
        self._subscribed.set()

    def subscribe(self, *topics: str) -> list[int]:
        self._subscribed.clear()
        self.client.subscribe([(topic, 0) for topic in topics])
        assert self._subscribed.wait(10), "no SUBACK"
        return self.granted

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def test_devices_plain_topics_reach_the_owning_partition(nats_mqtt: int) -> None:
    """A device publishes `vitals/<id>`; a shard subscribed to `vitals/<k>/+` receives it as
    `vitals/<k>/<id>` with k = FNV-1a-32(id) mod 64, and no other partition receives it."""
    patients = ["p-1", "bed-7", "x"]
    owner = {p: fnv1a_32(p) % 64 for p in patients}
    shard = _Client(nats_mqtt, "monitor", NATS_ENV["MONITOR_NATS_PASSWORD"])
    device = _Client(nats_mqtt, "device", NATS_ENV["DEVICE_NATS_PASSWORD"])
    try:
        mine = owner["p-1"]
        other = (mine + 1) % 64
        assert shard.subscribe(f"vitals/{mine}/+", f"vitals/{other}/+") == [0, 0]
        for patient in patients:
            device.client.publish(f"vitals/{patient}", b"{}", qos=0).wait_for_publish(5)
        deadline = time.monotonic() + 10
        expected = sorted(f"vitals/{owner[p]}/{p}" for p in patients if owner[p] in (mine, other))
        while sorted(shard.received) != expected and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sorted(shard.received) == expected
        assert f"vitals/{mine}/p-1" in shard.received
    finally:
        shard.close()
        device.close()


def test_a_device_account_cannot_read_vitals(nats_mqtt: int) -> None:
    """The device account's subscription to `vitals/#` is refused (SUBACK failure 128)."""
    device = _Client(nats_mqtt, "device", NATS_ENV["DEVICE_NATS_PASSWORD"])
    try:
        assert device.subscribe("vitals/#") == [128]
    finally:
        device.close()
