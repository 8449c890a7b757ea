"""The publishing loop on a fake clock: deadlines, counts, blocks, labels, stopping."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pytest

from monitor.core.schema import MESSAGE_ADAPTER, VitalsBlock
from simulators.labels import LabelSink, read_labels
from simulators.publisher import PublishOptions, chunk_length, publish
from simulators.scenarios import Timing, build
from simulators.signals import draw_patients


class Recorder:
    """A sink that records (clock time, topic, payload, qos)."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.sent: list[tuple[float, str, bytes, int]] = []

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        self.sent.append((self.clock.now, topic, payload, qos))

    def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
        for topic, payload in messages:
            self.publish(topic, payload, qos)


class FakeClock:
    """A monotonic clock that only moves when slept on."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s


def _run(opts: PublishOptions, patients: int = 3, scenario: str = "stable", labels=None):  # type: ignore[no-untyped-def]
    clock = FakeClock()
    sink = Recorder(clock)
    sim = build(
        scenario,
        draw_patients(patients, 4),
        4,
        rate=2.0,
        start_time=1.7e9,
        timing=Timing(warmup_s=5.0, gap_s=(5.0, 10.0)),
    )
    with LabelSink(labels) as sink_labels:
        stats = publish(sim, sink, sink_labels, opts, lambda: False, clock, clock.sleep)
    return sim, sink, stats, clock


def test_messages_leave_at_their_deadlines() -> None:
    """Sample k of each patient is sent at m0 + k / (rate * speed), never before."""
    _, sink, stats, _ = _run(PublishOptions(speed=4.0, duration_s=10.0))
    assert (stats.messages, stats.samples, stats.ticks) == (60, 60, 20)
    for sent_at, topic, payload, qos in sink.sent:
        msg = json.loads(payload)
        assert topic == f"vitals/{msg['patient_id']}"
        assert qos == 0
        assert abs(sent_at - (100.0 + msg["seq"] / 8.0)) < 0.05 + 1e-9
        assert sent_at >= 100.0 + msg["seq"] / 8.0 - 1e-9
        assert msg["t"] == 1.7e9 + msg["seq"] / 2.0


def test_max_speed_never_sleeps_and_sends_contiguous_seqs() -> None:
    """--max-speed publishes every sample of every patient without sleeping, in order."""
    _, sink, _, clock = _run(PublishOptions(max_speed=True, duration_s=100.0, qos=1))
    assert clock.sleeps == []
    seqs: dict[str, list[int]] = {}
    for _, topic, payload, qos in sink.sent:
        assert qos == 1
        seqs.setdefault(topic, []).append(json.loads(payload)["seq"])
    assert seqs == {f"vitals/p000{i}": list(range(200)) for i in range(3)}


def test_block_messages_carry_consecutive_samples() -> None:
    """--block 5 sends blocks of 5 samples, due with their last sample, valid by the schema."""
    _, sink, stats, _ = _run(PublishOptions(block=5, max_speed=True, duration_s=12.0), patients=2)
    assert (stats.messages, stats.samples) == (10, 48)  # 24 samples per patient: 5*4 + 4
    firsts = []
    for _, _, payload, _ in sink.sent:
        msg = MESSAGE_ADAPTER.validate_json(payload)
        assert isinstance(msg, VitalsBlock)
        seqs = [s.seq for s in msg.samples()]
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
        firsts.append(seqs[0])
    assert sorted(firsts) == [0, 0, 5, 5, 10, 10, 15, 15, 20, 20]


def test_labels_written_before_first_affected_sample(tmp_path: Path) -> None:
    """Each label is written (and published on the labels topic) before its first sample."""
    path = tmp_path / "l.jsonl"
    opts = PublishOptions(max_speed=True, duration_s=400.0, labels_topic="labels")
    sim, sink, stats, _ = _run(opts, patients=4, scenario="sensor-dropout", labels=path)
    written = read_labels(path)
    assert written
    assert stats.labels == len(written)
    assert sorted(written, key=lambda x: x.start_seq) == sorted(
        (lab for i in range(4) for lab in sim.labels(i, 0, stats.ticks)),
        key=lambda x: x.start_seq,
    )
    order = [(topic, payload) for _, topic, payload, _ in sink.sent]
    for lab in written:
        pos = order.index(("labels", lab.model_dump_json().encode()))
        later = [json.loads(p)["seq"] for t, p in order[pos:] if t == f"vitals/{lab.patient_id}"]
        if lab.end_seq + 1 < stats.ticks:  # a dropout: the next sample sent follows it
            assert later[0] == lab.end_seq + 1
        else:
            assert later == []
        earlier = [json.loads(p)["seq"] for t, p in order[:pos] if t == f"vitals/{lab.patient_id}"]
        assert earlier[-1] == lab.start_seq - 1


def test_stop_ends_promptly() -> None:
    """A stop request ends the run within one sleep slice, with the count so far."""
    clock = FakeClock()
    sink = Recorder(clock)
    sim = build("stable", draw_patients(2, 0), 0, rate=1.0)
    with LabelSink(None) as labels:
        stats = publish(
            sim, sink, labels, PublishOptions(), lambda: clock.now >= 103.0, clock, clock.sleep
        )
    # Ticks 0..3 fall due by t = 103; the wait for tick 4 sees the request.
    assert stats.ticks == 4
    assert stats.messages == 8
    assert clock.now <= 103.05


def test_chunk_length_is_a_block_multiple() -> None:
    """Chunks hold whole blocks and bound the samples computed ahead."""
    assert chunk_length(1000, 1) == 64
    assert chunk_length(10_000, 1) == 6
    assert chunk_length(1000, 10) == 60
    assert chunk_length(100_000, 50) == 50


class FakeWall:
    """A wall clock that reads a fixed unix time (the publisher reads it once, at m0)."""

    def __init__(self, now: float) -> None:
        self.now = now
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        return self.now


def test_wall_clock_times_stamp_each_sample_with_its_send_time(tmp_path: Path) -> None:
    """At speed 4 the wire time of seq k is the wall clock at m0 plus k / (rate * speed)."""
    clock, wall = FakeClock(), FakeWall(1.8e9)
    sink = Recorder(clock)
    sim = build("mixed", draw_patients(2, 4), 4, 2.0, 1.7e9, Timing(warmup_s=5.0, gap_s=(5, 10)))
    opts = PublishOptions(speed=4.0, duration_s=60.0, block=3, wall_clock_times=True)
    path = tmp_path / "labels.jsonl"
    with LabelSink(path) as labels:
        publish(sim, sink, labels, opts, lambda: False, clock, clock.sleep, wall)
    assert wall.reads == 1
    for sent_at, _, payload, _ in sink.sent:
        msg = MESSAGE_ADAPTER.validate_json(payload)
        for s in msg.samples():
            assert s.t == 1.8e9 + s.seq / 8.0
            assert s.t <= 1.8e9 + (sent_at - 100.0) + 1e-6  # never ahead of the send time
    written = read_labels(path)
    assert written
    for lab in written:
        assert (lab.start_t, lab.end_t) == (1.8e9 + lab.start_seq / 8, 1.8e9 + lab.end_seq / 8)


def test_wall_clock_times_at_max_speed_follow_the_clock_and_refuse_labels(
    tmp_path: Path,
) -> None:
    """At max speed each sample time is the wall clock when sent; labels cannot be timed."""
    clock, wall = FakeClock(), FakeWall(1.8e9)

    class Ticking(Recorder):
        def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
            super().publish_many(messages, qos)
            self.clock.now += 0.25  # sending takes time

    sink = Ticking(clock)
    sim = build("stable", draw_patients(1, 4), 4, 2.0, 1.7e9)
    opts = PublishOptions(max_speed=True, duration_s=2.0, wall_clock_times=True)
    with LabelSink(None) as labels:
        publish(sim, sink, labels, opts, lambda: False, clock, clock.sleep, wall)
    assert [json.loads(p)["t"] for _, _, p, _ in sink.sent] == [1.8e9 + 0.25 * k for k in range(4)]
    with LabelSink(tmp_path / "l.jsonl") as labels, pytest.raises(ValueError, match="labels"):
        publish(sim, sink, labels, opts, lambda: False, clock, clock.sleep, wall)
