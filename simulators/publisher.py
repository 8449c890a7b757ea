"""The publishing loop: a scenario's samples onto MQTT topics, on a monotonic schedule.

Sample `k` of every patient is due at ``m0 + k / (rate * speed)`` on the monotonic clock (each
deadline computed from `k`, so the rate never drifts); a block message is due with its last
sample. Samples are computed a chunk ahead; each label is written (and flushed) just before the
first sample of its event is published, so a killed run has the label of every event it started.

Time policy (docs/time.md, "Publishers"): with `PublishOptions.wall_clock_times` the time on the
wire is the wall-clock time the sample is sent at (its deadline mapped onto the wall clock, or
the wall clock itself under `max_speed`), not the simulated time, so a stream accelerated by
`speed` is never ahead of a receiver's clock. Labels then carry the same wire times.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

from simulators.encode import MessageEncoder
from simulators.labels import AnomalyLabel, LabelSink
from simulators.scenarios import Scenario

#: Upper bound on samples computed ahead (patients x chunk length), which bounds memory.
CHUNK_SAMPLES = 65_536


class Sink(Protocol):
    """Where messages go (`monitor.transports.mqtt.publisher.SyncPublisher`, or a list in tests)."""

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Send one message."""

    def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
        """Send messages in order (not retained)."""


@dataclass(frozen=True, slots=True)
class PublishOptions:
    """How to publish.

    Attributes:
        topic_prefix: Messages go to ``<topic_prefix>/<patient_id>``.
        qos: MQTT QoS of vitals messages.
        block: Samples per message (1: single-sample messages).
        speed: Simulated seconds per real second.
        max_speed: Publish as fast as possible (no sleeping).
        duration_s: Simulated seconds to publish; None until stopped.
        labels_topic: Also publish each label here (QoS 1, not retained).
        wall_clock_times: Stamp each sample with its wall-clock send time instead of its
            simulated time (a live broker run); False keeps the simulated times (recordings,
            byte-identical runs).
    """

    topic_prefix: str = "vitals"
    qos: int = 0
    block: int = 1
    speed: float = 1.0
    max_speed: bool = False
    duration_s: float | None = None
    labels_topic: str | None = None
    wall_clock_times: bool = False


@dataclass(frozen=True, slots=True)
class PublishStats:
    """What a run did.

    Attributes:
        messages: Vitals messages published.
        samples: Samples in them.
        labels: Labels written.
        ticks: Sample times covered per patient (the next sequence number).
        elapsed_s: Monotonic seconds from the first deadline to the end.
    """

    messages: int
    samples: int
    labels: int
    ticks: int
    elapsed_s: float


def chunk_length(patients: int, block: int) -> int:
    """Return how many sample times to compute at once: a multiple of `block`, at most 64."""
    per = max(1, min(64, CHUNK_SAMPLES // max(1, patients)))
    return block * max(1, per // block)


def publish(
    scenario: Scenario,
    sink: Sink,
    labels: LabelSink,
    opts: PublishOptions,
    stopped: Callable[[], bool],
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
    wall: Callable[[], float] = time.time,
) -> PublishStats:
    """Publish `scenario` until its duration ends or `stopped()` is true.

    Args:
        scenario: What to publish.
        sink: Where to publish.
        labels: Receives each event's label just before the event's first sample is sent.
        opts: Topic, QoS, block size, speed and duration.
        stopped: Polled at least every 50 ms; True ends the run after the current sample time.
        clock: Monotonic clock, seconds.
        sleep: Sleeps, seconds.
        wall: Wall clock, unix seconds (read once, at the first deadline, with
            `opts.wall_clock_times`).

    Returns:
        Counts and elapsed time.

    Raises:
        ValueError: `wall_clock_times` with `max_speed` and labels: a label is written before
            its event and the wire time of its last sample is not known then.
    """
    if opts.wall_clock_times and opts.max_speed and (labels.path or opts.labels_topic):
        raise ValueError("labels need a paced run (a speed) or the simulated times")
    n_patients = len(scenario.profiles)
    ids = [p.patient_id for p in scenario.profiles]
    topics = [f"{opts.topic_prefix}/{pid}" for pid in ids]
    encoders = [MessageEncoder(pid, scenario.names) for pid in ids]
    end = math.inf if opts.duration_s is None else math.ceil(opts.duration_s * scenario.rate)
    step = 1.0 / (scenario.rate * opts.speed)
    chunk = chunk_length(n_patients, opts.block)
    qos, block = opts.qos, opts.block
    messages = samples = n_labels = 0
    k = 0
    m0 = w0 = math.nan  # set once the first chunk is computed, so sample 0 is not late
    anchored = opts.wall_clock_times
    while k < end and not stopped():
        b = int(min(k + chunk, end))
        data = []
        starting: dict[int, list[AnomalyLabel]] = {}
        for i in range(n_patients):
            t, values, present = scenario.samples(i, k, b)
            sent = scenario.sent(i, k, b)
            data.append(
                (
                    t.tolist(),
                    values.tolist(),
                    present.tolist(),
                    None if sent is None else sent.tolist(),
                )
            )
            for label in scenario.labels(i, k, b):
                starting.setdefault(label.start_seq, []).append(label)
        if k == 0:
            m0, w0 = clock(), wall()
        stamps: list[float] = []
        for j in range(b - k):
            seq = k + j
            if opts.max_speed:
                if stopped():
                    return PublishStats(messages, samples, n_labels, seq, clock() - m0)
                if anchored:
                    stamps.append(w0 + (clock() - m0))
            else:
                stamps.append(w0 + seq * step)
                deadline = m0 + seq * step
                while (wait := deadline - clock()) > 0:
                    if stopped():
                        return PublishStats(messages, samples, n_labels, seq, clock() - m0)
                    sleep(min(wait, 0.05))
            for label in starting.get(seq, ()):
                if anchored:
                    last = w0 + label.end_seq * step
                    label = label.model_copy(update={"start_t": stamps[j], "end_t": last})
                line = labels.write(label)
                n_labels += 1
                if opts.labels_topic:
                    sink.publish(opts.labels_topic, line.encode(), 1, False)
            batch: list[tuple[str, bytes]] = []
            if block == 1:
                for i in range(n_patients):
                    t, values, present, sent = data[i]
                    if present[j]:
                        mask = None if sent is None else sent[j]
                        tj = stamps[j] if anchored else t[j]
                        batch.append((topics[i], encoders[i].single(tj, seq, values[j], mask)))
                samples += len(batch)
            elif (seq + 1) % block == 0 or seq + 1 == b:
                lo = j - (seq % block)
                for i in range(n_patients):
                    t, values, present, sent = data[i]
                    rows = [r for r in range(lo, j + 1) if present[r]]
                    if rows:
                        times = stamps if anchored else t
                        payload = encoders[i].block(
                            [times[r] for r in rows],
                            [k + r for r in rows],
                            [values[r] for r in rows],
                            None if sent is None else [sent[r] for r in rows],
                        )
                        batch.append((topics[i], payload))
                        samples += len(rows)
            if batch:
                sink.publish_many(batch, qos)
                messages += len(batch)
        k = b
    return PublishStats(messages, samples, n_labels, k, 0.0 if k == 0 else clock() - m0)
