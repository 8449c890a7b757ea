"""The daemon's MQTT intake: large socket reads and the QoS 0 fast path lose nothing."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.publisher import SyncPublisher
from tests.support.mosquitto import Mosquitto
from tests.support.tls import TlsFiles, make_ca_and_server

pytestmark = pytest.mark.mqtt
# Sizes from 1 byte to 3 reads of 64 KiB: packets start, end and are cut anywhere in a read.
SIZES = (1, 2, 127, 128, 300, 16_383, 16_384, 70_000, 200_000)


def qos0_messages(n: int) -> list[tuple[str, bytes]]:
    """`n` QoS 0 messages on a/<k>, each payload unique, of every size in SIZES."""
    return [(f"a/{i % 5}", f"{i}:".encode() + b"x" * SIZES[i % len(SIZES)]) for i in range(n)]


async def receive(
    cfg: BrokerConfig, publish: Callable[[], None], expected: int, timeout_s: float = 20.0
) -> list[tuple[str, bytes]]:
    """Subscribe to a/# and b/# with a sink, run `publish` in a thread, return what arrived
    once `expected` messages have (or the timeout has passed, with no later traffic to push
    anything left behind in a read buffer)."""
    got: list[tuple[str, bytes]] = []
    enough = asyncio.Event()

    def sink(messages: list[tuple[str, bytes]]) -> None:
        got.extend(messages)
        if len(got) >= expected:
            enough.set()

    async with connect(cfg, on_message=sink) as conn:
        await conn.client.subscribe("a/#", qos=1)
        await conn.client.subscribe("b/#", qos=1)
        await asyncio.to_thread(publish)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(enough.wait(), timeout_s)
    return got


def by_topic(messages: list[tuple[str, bytes]]) -> dict[str, list[bytes]]:
    """Payloads per topic, in arrival order."""
    out: dict[str, list[bytes]] = {}
    for topic, body in messages:
        out.setdefault(topic, []).append(body)
    return out


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_every_message_reaches_the_sink_intact_and_in_order(
    mosquitto: Mosquitto, protocol: str
) -> None:
    """3,000 QoS 0 messages in 64 KiB writes (payloads 1 B to 200 kB), 50 QoS 1 messages and,
    on MQTT 5, 50 messages with user properties (which paho parses) all reach the sink once,
    byte for byte, each topic in publishing order."""
    qos0 = qos0_messages(3000)
    qos1 = [(f"b/{i % 3}", f"q1-{i}".encode()) for i in range(50)]
    props = [(f"b/p{i % 2}", f"props-{i}".encode()) for i in range(50 if protocol == "5" else 0)]
    cfg = BrokerConfig(url=mosquitto.url, protocol=protocol)  # type: ignore[arg-type]

    def publish() -> None:
        pub = SyncPublisher(cfg)
        pub.connect()
        for i in range(0, len(qos0), 500):
            pub.publish_many(qos0[i : i + 500])
            if i == 1000:
                for topic, body in qos1:
                    pub.publish(topic, body, qos=1)
        pub.close()
        if props:
            client = paho.Client(CallbackAPIVersion.VERSION2, protocol=paho.MQTTv5)
            client.connect("127.0.0.1", mosquitto.port)
            client.loop_start()
            for topic, body in props:
                p = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                p.UserProperty = ("k", "v")
                client.publish(topic, body, qos=0, properties=p).wait_for_publish(5)
            client.disconnect()
            client.loop_stop()

    expected = qos0 + qos1 + props
    got = asyncio.run(receive(cfg, publish, len(expected)))
    assert len(got) == len(expected)
    assert by_topic(got) == by_topic(expected)


def test_fast_path_feeds_the_watchdog_clock(mosquitto: Mosquitto) -> None:
    """QoS 0 messages taken without paho still count as bytes from the broker for the
    watchdog (`silence_s`): 1 s after subscribing, a burst arrives and silence drops."""
    cfg = BrokerConfig(url=mosquitto.url, protocol="3.1.1")
    messages = [(f"a/{i}", b"{}") for i in range(300)]

    async def scenario() -> tuple[float, float, int]:
        got: list[tuple[str, bytes]] = []
        async with connect(cfg, on_message=got.extend) as conn:
            await conn.client.subscribe("a/#", qos=0)
            await asyncio.sleep(1.0)
            before = conn.silence_s()
            pub = SyncPublisher(cfg)
            await asyncio.to_thread(pub.connect)
            pub.publish_many(messages)
            await asyncio.to_thread(pub.close)
            for _ in range(100):
                if len(got) == len(messages):
                    break
                await asyncio.sleep(0.02)
            return before, conn.silence_s(), len(got)

    before, after, n = asyncio.run(scenario())
    assert n == len(messages)
    assert before >= 1.0
    assert after < before  # the burst reset it (how close to 0: a timing, not checked here)


@pytest.fixture(scope="module")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Mosquitto, TlsFiles]]:
    """Mosquitto with a TLS-only listener and a CA of its own."""
    tls = make_ca_and_server(tmp_path_factory.mktemp("tls"))
    broker = Mosquitto(
        workdir=tmp_path_factory.mktemp("tls-mosquitto"),
        listener_extra=(
            f"cafile {tls.ca_cert}\ncertfile {tls.server_cert}\nkeyfile {tls.server_key}"
        ),
    )
    broker.start()
    yield broker, tls
    broker.stop()


def test_tls_bursts_arrive_whole(tls_broker: tuple[Mosquitto, TlsFiles]) -> None:
    """Over TLS (records of up to 16 KiB, decrypted bytes held in the SSL object between
    reads) 2,000 QoS 0 messages of 1 B to 200 kB all reach the sink, in order."""
    broker, tls = tls_broker
    cfg = BrokerConfig(url=f"mqtts://127.0.0.1:{broker.port}", ca_file=Path(tls.ca_cert))
    messages = qos0_messages(2000)

    def publish() -> None:
        pub = SyncPublisher(cfg)
        pub.connect()
        for i in range(0, len(messages), 400):
            pub.publish_many(messages[i : i + 400])
        pub.close()

    got = asyncio.run(receive(cfg, publish, len(messages)))
    assert len(got) == len(messages)
    assert by_topic(got) == by_topic(messages)
