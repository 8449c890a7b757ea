"""The partition function and topic convention against a real nats-server's mapping."""

from __future__ import annotations

import asyncio
import threading
import time

import paho.mqtt.client as paho
import pytest

from monitor.settings import BrokerSettings
from monitor.transports.mqtt.ingress import MqttIngress
from monitor.transports.mqtt.topics import PartitionCheck, partition_topics
from monitor.transports.nats.history import ReplayBatch, replay
from monitor.transports.nats.partition import fnv1a_32, owned_partitions, partition_of
from tests.support.nats_server import NatsServer


class _Mqtt:
    """A paho MQTT 3.1.1 client on the server's listener, collecting received topics."""

    def __init__(self, server: NatsServer, client_id: str) -> None:
        self.topics: list[str] = []
        self.lost = threading.Event()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv311
        )
        self.client.on_message = lambda _c, _u, m: self.topics.append(m.topic)
        self.client.on_disconnect = lambda *_a: self.lost.set()
        self.client.connect("127.0.0.1", server.mqtt_port)
        self.client.loop_start()

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _wait(predicate: object, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_fnv1a_32_known_vectors() -> None:
    """FNV-1a 32 of the empty string and of "a" are the published test vectors."""
    assert fnv1a_32("") == 0x811C9DC5
    assert fnv1a_32("a") == 0xE40C292C
    assert fnv1a_32("foobar") == 0xBF9CF968


def test_owned_partitions_split_every_partition_once() -> None:
    """Shards 0..N-1 own disjoint partitions covering 0..P-1; N must divide P."""
    owned = [owned_partitions(k, 4, 64) for k in range(4)]
    assert sorted(p for part in owned for p in part) == list(range(64))
    assert owned[1][:3] == [1, 5, 9]
    with pytest.raises(ValueError, match="must divide"):
        owned_partitions(0, 3, 64)
    with pytest.raises(ValueError, match="not in"):
        owned_partitions(4, 4, 64)


def test_partition_matches_the_servers_mapping(nats_server: NatsServer) -> None:
    """A device's `vitals/<id>` arrives as `vitals/<k>/<id>` with k = partition_of(id, 64)."""
    ids = [f"p-{i:04d}" for i in range(300)] + ["bed_7", "X", "patient-ü"]
    reader = _Mqtt(nats_server, "reader")
    device = _Mqtt(nats_server, "device")
    try:
        reader.client.subscribe("vitals/+/+", qos=0)
        time.sleep(0.3)  # the SUBACK: the listener routes from then on
        for pid in ids:
            device.client.publish(f"vitals/{pid}", b"{}", qos=0)
        _wait(lambda: len(reader.topics) >= len(ids))
        assert sorted(reader.topics) == sorted(f"vitals/{partition_of(p, 64)}/{p}" for p in ids)
    finally:
        reader.close()
        device.close()


def test_a_dot_in_the_patient_id_disconnects_the_device_on_nats_2_9(
    nats_server: NatsServer,
) -> None:
    """nats-server 2.9.10 drops an MQTT client that publishes `vitals/a.b` (the id is lost):
    ids with '.' are unsupported on NATS (docs/messages.md, docs/scale-out.md); this test
    fails when the installed server starts mapping '.', so the limitation can be lifted."""
    reader = _Mqtt(nats_server, "reader")
    device = _Mqtt(nats_server, "device")
    try:
        reader.client.subscribe("vitals/#", qos=0)
        time.sleep(0.3)
        device.client.publish("vitals/bed.7", b"{}", qos=0)
        assert device.lost.wait(10), "the server kept the client"
        time.sleep(0.3)
        assert reader.topics == []
    finally:
        reader.close()
        device.close()


class _Shell:
    """What the transport's message sink reaches of the daemon: received and refused."""

    def __init__(self) -> None:
        self.got: list[list[tuple[str | None, bytes]]] = []
        self.refusals: list[str] = []

    def received(self, messages: list[tuple[str | None, bytes]]) -> None:
        self.got.append(messages)

    def refused(self, reason: str) -> None:
        self.refusals.append(reason)


def test_partition_check_refuses_a_sample_in_the_wrong_partition() -> None:
    """A topic whose partition is not the id's hash is refused (``wrong_partition``); the
    others pass in order, in one call, keyed by their patient id."""
    owned = owned_partitions(0, 2, 64)
    transport = MqttIngress(
        BrokerSettings(),
        partition_topics("vitals", owned),
        qos=1,
        max_payload_bytes=1024,
        persistent_session=False,
        session_expiry_s=0,
        reconnect_min_s=0.2,
        reconnect_max_s=2.0,
        refused_retry_s=30.0,
        alerts_prefix="alerts",
        alerts_qos=1,
        partitions=PartitionCheck(64, owned),
    )
    shell = _Shell()
    sink = transport.sink(shell)  # type: ignore[arg-type]  # only the two methods it calls
    mine = next(f"p-{i}" for i in range(100) if partition_of(f"p-{i}", 64) % 2 == 0)
    k = partition_of(mine, 64)
    wrong = (k + 2) % 64  # owned too, but not this id's partition
    sink([(f"vitals/{k}/{mine}", b"1"), (f"vitals/{wrong}/{mine}", b"2"), ("vitals/x", b"3")])
    assert shell.got == [[(mine, b"1")]]
    assert shell.refusals == ["wrong_partition", "wrong_partition"]
    assert transport.topics[:2] == ["vitals/0/+", "vitals/2/+"]


def test_replay_reads_only_the_owned_partitions_in_order(nats_server: NatsServer) -> None:
    """The stream replay hands on the owned partitions' messages as MQTT topics, each
    patient's in publish order, from the given stream sequence on."""
    ids = [f"p-{i}" for i in range(40)]
    device = _Mqtt(nats_server, "device")
    try:
        for n in range(3):
            for pid in ids:
                device.client.publish(f"vitals/{pid}", str(n).encode(), qos=1)
        time.sleep(1.0)
    finally:
        device.close()
    owned = owned_partitions(1, 2, 64)
    batches: list[ReplayBatch] = []

    async def handle(batch: ReplayBatch) -> None:
        batches.append(batch)

    done = asyncio.run(replay(nats_server.url, "VITALS", "vitals", owned, handle))
    got = [(topic, payload) for batch in batches for topic, payload, _ in batch]
    mine = [p for p in ids if partition_of(p, 64) % 2 == 1]
    assert done.messages == len(got) == 3 * len(mine)
    assert done.last_seq == 3 * len(ids)
    for pid in mine:
        topic = f"vitals/{partition_of(pid, 64)}/{pid}"
        assert [p for t, p in got if t == topic] == [b"0", b"1", b"2"]
    later = asyncio.run(
        replay(nats_server.url, "VITALS", "vitals", owned, handle, start_seq=done.last_seq + 1)
    )
    assert later.messages == 0
