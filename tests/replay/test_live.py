"""Live record and replay against a real Mosquitto: timing at 10x, and a full round trip."""

from __future__ import annotations

import asyncio
import itertools
import time
from pathlib import Path

import pytest

from monitor.replay.player import play
from monitor.replay.recorder import record
from monitor.replay.recording import Record, RecordingWriter, read_recording
from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig
from tests.support.mosquitto import Mosquitto

# Irregular inter-arrival times summing to 20 s: 2 s of replay at 10x.
GAPS = [0.5, 1.5, 0.25, 0.75, 2.0, 1.0, 0.5, 3.0, 0.5, 1.0, 2.0, 0.25, 0.75, 1.0, 2.0, 3.0]


def _records() -> list[Record]:
    t = 1_700_000_000.0
    out = [Record("replay/p1", b'{"i":0}', t)]
    for i, gap in enumerate(GAPS, start=1):
        t += gap
        out.append(Record(f"replay/p{i % 3}", f'{{"i":{i}}}'.encode(), t))
    return out


async def _replay_and_receive(
    url: str, records: list[Record], speed: float
) -> tuple[float, list[float]]:
    """Replay `records` and return when it started and each receive time (monotonic)."""
    received: list[float] = []
    cfg = BrokerConfig(url=url)
    async with connect(cfg) as sub, connect(cfg) as pub:
        await sub.client.subscribe("replay/#", qos=1)

        async def receive() -> None:
            async for _message in sub.client.messages:
                received.append(time.monotonic())
                if len(received) == len(records):
                    return

        receiver = asyncio.create_task(receive())

        async def publish(r: Record) -> None:
            await pub.client.publish(r.topic, r.payload, qos=1)

        started = time.monotonic()
        await play(records, publish, speed=speed)
        await asyncio.wait_for(receiver, timeout=30)
    return started, received


def _expected(records: list[Record], speed: float) -> list[float]:
    """Each record's recorded offset from the first, compressed `speed` times."""
    return [(r.received_at - records[0].received_at) / speed for r in records]


@pytest.mark.mqtt
def test_replay_at_10x_never_sends_early(mosquitto: Mosquitto) -> None:
    """At 10x every message reaches a subscriber, in order, none before its recorded offset
    / 10 from the start of the replay (how late is the perf variant's business)."""
    records = _records()
    started, received = asyncio.run(_replay_and_receive(mosquitto.url, records, speed=10.0))
    expected = _expected(records, 10.0)
    assert len(received) == len(records)
    # asyncio wakes a timer up to its clock resolution early: 10 ms is far above that.
    early = [e - (r - started) for r, e in zip(received, expected, strict=True)]
    assert max(early) <= 0.01, f"a message came {max(early):.3f} s early"


@pytest.mark.perf
@pytest.mark.mqtt
def test_replay_at_10x_keeps_timing_within_5_percent(mosquitto: Mosquitto) -> None:
    """Receive times at a subscriber follow recorded offsets / 10, each within 5% of the span."""
    records = _records()
    _, received = asyncio.run(_replay_and_receive(mosquitto.url, records, speed=10.0))
    span = (records[-1].received_at - records[0].received_at) / 10.0
    assert span == pytest.approx(2.0)
    actual = [r - received[0] for r in received]
    expected = _expected(records, 10.0)
    worst = max(abs(a - e) for a, e in zip(actual, expected, strict=True))
    print(f"replay at 10x: worst deviation {worst:.3f} s over a {span:.1f} s span")
    assert worst <= 0.05 * span, f"worst deviation {worst:.3f} s"
    assert actual[-1] == pytest.approx(span, rel=0.05)


@pytest.mark.mqtt
def test_recorder_captures_a_max_speed_replay_in_order(
    mosquitto: Mosquitto, tmp_path: Path
) -> None:
    """Replayed messages (one binary) are recorded in order with their topics and exact bytes."""
    source = tmp_path / "source.jsonl"
    records = [*_records(), Record("replay/bin", b"\xff\xfe\x00", 1_700_000_030.0)]
    with RecordingWriter(source) as writer:
        for r in records:
            writer.write(r)
    out = tmp_path / "captured.jsonl.gz"

    async def scenario() -> int:
        cfg = BrokerConfig(url=mosquitto.url)
        stop, subscribed = asyncio.Event(), asyncio.Event()
        recorder = asyncio.create_task(
            record(cfg, out, topics=["replay/#"], stop=stop, subscribed=subscribed)
        )
        await asyncio.wait_for(subscribed.wait(), timeout=10)
        async with connect(cfg) as pub:

            async def publish(r: Record) -> None:
                await pub.client.publish(r.topic, r.payload, qos=1)

            sent = await play(read_recording(source), publish, speed=None)
        await asyncio.sleep(0.5)
        stop.set()
        assert sent == len(records)
        return (await asyncio.wait_for(recorder, timeout=10)).recorded

    count = asyncio.run(scenario())
    captured = list(read_recording(out))
    assert count == len(records)
    assert [(r.topic, r.payload) for r in captured] == [(r.topic, r.payload) for r in records]
    assert all(b.received_at >= a.received_at for a, b in itertools.pairwise(captured))


@pytest.mark.mqtt
def test_recorder_stops_after_duration(mosquitto: Mosquitto, tmp_path: Path) -> None:
    """With duration 0.5 s and no traffic the recorder returns 0, not before half a second
    (and not much later: the bound is generous for a shared machine)."""
    started = time.monotonic()
    stats = asyncio.run(record(BrokerConfig(url=mosquitto.url), tmp_path / "r.jsonl", duration=0.5))
    elapsed = time.monotonic() - started
    print(f"recorder with duration 0.5 s returned after {elapsed:.3f} s")
    assert stats.recorded == 0
    assert 0.5 <= elapsed < 30.0
    assert list(read_recording(tmp_path / "r.jsonl")) == []
