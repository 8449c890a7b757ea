"""The transport against a scripted hostile broker on loopback (raw MQTT 3.1.1 bytes).

A PUBLISH whose topic is not UTF-8 is refused and counted, later messages still arrive; a
packet longer than the limit drops the connection at its header, once, without buffering
what the broker goes on sending.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import tracemalloc

from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig
from tests.support.fake_broker import FakeBroker, publish, read_packet, remaining


def test_non_utf8_topic_is_refused_and_later_messages_arrive() -> None:
    """QoS 0 and QoS 1 PUBLISH with a non-UTF-8 topic: each refused once, counted; the
    connection stays up and the valid message after them is delivered."""
    acks: list[bytes] = []

    def script(conn: socket.socket) -> None:
        conn.sendall(
            publish(b"v/\xff\xfe", b"{}")
            + publish(b"v/\xc3(", b"{}", qos=1, mid=7)
            + publish(b"v/ok", b"good")
        )
        acks.append(read_packet(conn))  # the QoS 1 one is still acknowledged
        conn.recv(1)  # until the client leaves

    broker = FakeBroker(script)
    got: list[tuple[str, bytes]] = []
    refused: list[str] = []

    async def scenario() -> bool:
        cfg = BrokerConfig(url=f"mqtt://127.0.0.1:{broker.port}", protocol="3.1.1")
        async with connect(cfg, on_message=got.extend, on_refused=refused.append) as conn:
            await conn.client.subscribe("v/#", qos=1)
            for _ in range(200):
                if got and acks:
                    break
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.1)
            return conn.lost.done()

    try:
        lost = asyncio.run(scenario())
    finally:
        broker.close()
    assert got == [("v/ok", b"good")]
    assert refused == ["topic_not_utf8", "topic_not_utf8"]
    assert acks == [b"\x40\x00\x07"]  # PUBACK (first byte, body) for mid 7
    assert not lost


def test_oversize_packet_drops_the_connection_without_buffering_it() -> None:
    """A PUBLISH declaring 200 MB: the connection is dropped at its header (reported once)
    and the client's memory does not follow the bytes the broker pushes (8 MB)."""
    sent = [0]

    def script(conn: socket.socket) -> None:
        conn.sendall(b"\x30" + remaining(200_000_000) + b"\x00\x03v/x")
        chunk = b"\x00" * 65_536
        try:
            while sent[0] < 8_000_000:
                conn.sendall(chunk)
                sent[0] += len(chunk)
        except OSError:
            pass  # the client shut the connection: expected

    broker = FakeBroker(script)
    got: list[tuple[str, bytes]] = []
    refused: list[str] = []

    async def scenario() -> tuple[bool, int]:
        cfg = BrokerConfig(url=f"mqtt://127.0.0.1:{broker.port}", protocol="3.1.1")
        tracemalloc.start()
        try:
            async with connect(
                cfg, on_message=got.extend, on_refused=refused.append, max_packet_bytes=4096
            ) as conn:
                tracemalloc.reset_peak()
                await conn.client.subscribe("v/#", qos=1)
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(asyncio.shield(conn.lost), 10)
                lost = conn.lost.done()
            return lost, tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()

    try:
        lost, peak = asyncio.run(scenario())
    finally:
        broker.close()
    assert lost
    assert refused == ["packet_too_large"]
    assert got == []
    assert peak < 2_000_000  # far below the 8 MB pushed, let alone the 200 MB declared
