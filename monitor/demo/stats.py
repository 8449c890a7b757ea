"""Figures for the live summary, read from the in-process daemon's metrics registry.

Rates and latency quantiles are computed over a sliding window of snapshots (a few seconds),
the way Prometheus would with ``rate`` and ``histogram_quantile``, so the summary shows what
happens now rather than averages since start.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from prometheus_client.registry import Collector

from monitor.service.metrics import Metrics

Buckets = tuple[tuple[float, float], ...]


@dataclass(frozen=True, slots=True)
class Reading:
    """One snapshot of the counters the summary shows.

    Attributes:
        at: Monotonic time of the snapshot, seconds.
        received: Payloads handed over by the MQTT client, since start.
        scored: Samples scored, since start.
        warming: Samples that went into a window still filling (not scored), since start.
        settled: Samples given any outcome, since start.
        patients: Patients with a window in memory.
        alerts: Physiological alerts raised, since start.
        technical: Technical alerts raised, since start.
        e2e: Cumulative (upper bound, count) buckets of end-to-end latency.
        inference: Cumulative buckets of the batched forward's duration.
    """

    at: float
    received: float
    scored: float
    warming: float
    settled: float
    patients: float
    alerts: float
    technical: float
    e2e: Buckets
    inference: Buckets


def _total(collector: Collector, suffix: str = "_total", **labels: str) -> float:
    want = set(labels.items())
    return sum(
        s.value
        for family in collector.collect()
        for s in family.samples
        if s.name.endswith(suffix) and want <= set(s.labels.items())
    )


def _buckets(histogram: Collector) -> Buckets:
    return tuple(
        (float(s.labels["le"]), s.value)
        for family in histogram.collect()
        for s in family.samples
        if s.name.endswith("_bucket")
    )


def read(metrics: Metrics, at: float) -> Reading:
    """Take a snapshot of `metrics` at monotonic time `at`."""
    return Reading(
        at=at,
        received=_total(metrics.received),
        scored=_total(metrics.messages, outcome="scored"),
        warming=_total(metrics.messages, outcome="warming_up"),
        settled=_total(metrics.messages),
        patients=_total(metrics.active_patients, suffix=""),
        alerts=_total(metrics.alerts),
        technical=_total(metrics.technical_alerts),
        e2e=_buckets(metrics.end_to_end_latency),
        inference=_buckets(metrics.inference_latency),
    )


def quantile(q: float, new: Buckets, old: Buckets) -> float:
    """The q-quantile of the observations between two bucket snapshots (NaN if none).

    Linear interpolation inside the bucket, as PromQL's ``histogram_quantile`` does; a
    quantile in the +Inf bucket returns the highest finite bound.
    """
    before = dict(old)
    counts = [(le, c - before.get(le, 0.0)) for le, c in new]
    total = counts[-1][1] if counts else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    prev_le, prev_c = 0.0, 0.0
    for le, c in counts:
        if c >= rank:
            if math.isinf(le):
                return prev_le
            inside = c - prev_c
            return prev_le + (le - prev_le) * ((rank - prev_c) / inside if inside else 1.0)
        prev_le, prev_c = le, c
    return prev_le  # pragma: no cover - the +Inf bucket always holds the total


@dataclass(frozen=True, slots=True)
class Figures:
    """What one refresh of the summary shows.

    Attributes:
        patients: Patients held by the daemon.
        messages_per_s: Payloads received per second over the window.
        scored_per_s: Samples scored per second over the window.
        warming_per_s: Samples per second that filled a window instead (a patient's first
            `window` samples, and those after a gap, are not scored).
        other_per_s: Samples per second with any other outcome (refused, late, duplicate,
            shed).
        e2e_p50_s: Median end-to-end latency over the window (NaN: nothing scored).
        e2e_p99_s: 99th percentile of end-to-end latency over the window.
        inference_p50_s: Median batched-forward duration over the window.
        inference_p99_s: 99th percentile of the batched-forward duration.
        alerts: Physiological alerts raised since start.
        technical: Technical alerts raised since start.
    """

    patients: int
    messages_per_s: float
    scored_per_s: float
    warming_per_s: float
    other_per_s: float
    e2e_p50_s: float
    e2e_p99_s: float
    inference_p50_s: float
    inference_p99_s: float
    alerts: int
    technical: int


class Window:
    """Keeps the last few snapshots and turns them into `Figures`.

    Args:
        seconds: Width of the sliding window for rates and quantiles.
    """

    def __init__(self, seconds: float = 5.0) -> None:
        self.seconds = seconds
        self._readings: deque[Reading] = deque()

    def add(self, reading: Reading) -> Figures:
        """Record a snapshot and return the figures over the window that ends with it."""
        self._readings.append(reading)
        while len(self._readings) > 2 and reading.at - self._readings[1].at >= self.seconds:
            self._readings.popleft()
        first = self._readings[0]
        span = reading.at - first.at

        def rate(new: float, old: float) -> float:
            return (new - old) / span if span > 0 else 0.0

        return Figures(
            patients=int(reading.patients),
            messages_per_s=rate(reading.received, first.received),
            scored_per_s=rate(reading.scored, first.scored),
            warming_per_s=rate(reading.warming, first.warming),
            other_per_s=max(
                0.0,
                rate(
                    reading.settled - reading.scored - reading.warming,
                    first.settled - first.scored - first.warming,
                ),
            ),
            e2e_p50_s=quantile(0.5, reading.e2e, first.e2e),
            e2e_p99_s=quantile(0.99, reading.e2e, first.e2e),
            inference_p50_s=quantile(0.5, reading.inference, first.inference),
            inference_p99_s=quantile(0.99, reading.inference, first.inference),
            alerts=int(reading.alerts),
            technical=int(reading.technical),
        )


def combine(readings: list[Reading]) -> Reading:
    """One reading of several daemons taken together (the shards of `monitor demo --shards`):
    counters and histogram buckets add up (every daemon has the same bucket bounds)."""
    if not readings:
        raise ValueError("no reading to combine")

    def add(pick: list[Buckets]) -> Buckets:
        sums: dict[float, float] = {}
        for buckets in pick:
            for le, count in buckets:
                sums[le] = sums.get(le, 0.0) + count
        return tuple(sums.items())

    return Reading(
        at=max(r.at for r in readings),
        received=sum(r.received for r in readings),
        scored=sum(r.scored for r in readings),
        warming=sum(r.warming for r in readings),
        settled=sum(r.settled for r in readings),
        patients=sum(r.patients for r in readings),
        alerts=sum(r.alerts for r in readings),
        technical=sum(r.technical for r in readings),
        e2e=add([r.e2e for r in readings]),
        inference=add([r.inference for r in readings]),
    )
