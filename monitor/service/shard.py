"""A sharded daemon's own parts: its shard label on every metric, and window recovery.

`ShardLabels` exposes a registry's metrics with a constant ``shard`` label (the shard index;
never a patient). `Recovery` rebuilds the owned patients' windows, scale and detector state
from the JetStream stream before the daemon goes live: the stored messages go through the
same decode, ingest and scoring path as live ones, on the stream's receive times (a virtual
clock, as offline replay). An alert the replay decides is published only when the alerts
stream (`nats.alerts_stream`, over ``alerts.>``) does not hold its id: the previous owner
published the others; the rest come from samples it never scored (it died first, or the
shard was down while devices went on publishing). Without that stream every alert decided
in the replay is suppressed (counted), and those of unscored samples are lost.

The switch-over (`Daemon` drives it): replay up to the stream's last sequence; subscribe
live over MQTT (messages buffer in the intake queue); replay again from that sequence on
(the catch-up); then drain the live queue. A sample both replayed and received live ends
as ``duplicate`` or ``late`` by the pipeline's order policy (its seq is not above the
patient's last), so nothing is scored twice and nothing between the two reads is missed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.core.alerts import AlertEvent
from monitor.service.metrics import Metrics
from monitor.service.pipeline import Job, Pipeline
from monitor.transports.mqtt.topics import patient_of
from monitor.transports.nats.history import (
    ReplayBatch,
    Replayed,
    published_alert_ids,
    replay,
)

log = structlog.get_logger("monitor")

#: Runs one batched forward on the inference thread.
Predict = Callable[[np.ndarray[Any, Any]], Awaitable[np.ndarray[Any, Any]]]
#: Jobs per forward in a replay, as offline replay's (monitor.replay.offline): larger
#: forwards cost less per window, and no verdict is awaited.
REPLAY_BATCH = 1024
#: Publishes alert events (the daemon's alert path: log line, outbox, broker).
Publish = Callable[[list[AlertEvent]], None]


class ShardLabels(Collector):
    """Every metric of `inner` with the label ``shard="<index>"`` added.

    Args:
        inner: The daemon's own registry.
        shard: The shard's label value.
    """

    def __init__(self, inner: CollectorRegistry, shard: str) -> None:
        self._inner = inner
        self._shard = shard

    def collect(self) -> Iterator[Metric]:
        """Copy each family of the inner registry, each sample labelled with the shard."""
        for family in self._inner.collect():
            out = Metric(family.name, family.documentation, family.type, family.unit)
            for s in family.samples:
                labels = {**s.labels, "shard": self._shard}
                out.add_sample(s.name, labels, s.value, s.timestamp, s.exemplar)
            yield out


class Recovery:
    """Rebuild the owned partitions' state from the stream (see the module docstring).

    Args:
        pipeline: The daemon's pipeline.
        predict: Runs a forward on the daemon's inference thread.
        publish: The daemon's alert path, for alerts nobody published yet.
        metrics: The daemon's metrics (the recovery metrics join its registry).
        accepts: Whether a topic's partition is its patient id's (`PartitionGuard.accepts`).
        url: NATS URL.
        stream: The stream's name.
        alerts_stream: The stream of published alerts, or None.
        prefix: The subjects' first token (``vitals``).
        partitions: The owned partitions.
        max_batch: Jobs per forward (at least `REPLAY_BATCH`: nobody waits for a verdict).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        predict: Predict,
        publish: Publish,
        metrics: Metrics,
        accepts: Callable[[str], bool],
        *,
        url: str,
        stream: str,
        alerts_stream: str | None,
        prefix: str,
        partitions: list[int],
        max_batch: int,
    ) -> None:
        self._pipeline = pipeline
        self._predict = predict
        self._publish = publish
        self._metrics = metrics
        self._accepts = accepts
        registry = metrics.registry
        self._alerts_stream = alerts_stream
        self._published: set[str] | None = None  # read once, on the first run
        # The forward on the inference thread: (jobs, windows, predictions to come).
        self._inflight: tuple[list[Job], np.ndarray[Any, Any], asyncio.Future[Any]] | None = None
        self._url, self._stream, self._prefix = url, stream, prefix
        self._partitions = partitions
        self._max_batch = max(max_batch, REPLAY_BATCH)
        #: Alert changes suppressed so far (the counter's value, for the log line).
        self.suppressed_total = 0
        #: Alert changes published by the replay (no shard had published them).
        self.published_total = 0
        self.recovered = Counter(
            "monitor_recovered_messages",
            "Messages replayed from the stream on start (their outcomes count beside the "
            "received ones).",
            registry=registry,
        )
        self.suppressed = Counter(
            "monitor_recovery_suppressed_alerts",
            "Alert changes decided while replaying history: state kept, not published.",
            registry=registry,
        )
        self.published = Counter(
            "monitor_recovery_published_alerts",
            "Alert changes decided while replaying history that no shard had published.",
            registry=registry,
        )
        self.duration = Gauge(
            "monitor_recovery_seconds",
            "Seconds spent replaying history since start.",
            registry=registry,
        )

    async def run(self, start_seq: int = 1) -> Replayed:
        """Replay the owned partitions from `start_seq`, score everything, return the count."""
        t0 = time.perf_counter()
        if self._published is None and self._alerts_stream is not None:
            self._published = await published_alert_ids(self._url, self._alerts_stream) or set()
        done = await replay(
            self._url,
            self._stream,
            self._prefix,
            self._partitions,
            self._handle,
            start_seq=start_seq,
        )
        jobs = self._pipeline.drain_all()
        for i in range(0, len(jobs), self._max_batch):
            await self._submit(jobs[i : i + self._max_batch])
        await self._finish()
        self.duration.inc(time.perf_counter() - t0)
        return done

    def _decided(self, events: list[AlertEvent]) -> None:
        """Publish the replay's alert changes that nobody published; count the others."""
        if not events:
            return
        published = self._published
        new = [] if published is None else [e for e in events if e.id not in published]
        self.suppressed_total += len(events) - len(new)
        self.suppressed.inc(len(events) - len(new))
        if new:
            self.published_total += len(new)
            self.published.inc(len(new))
            self._publish(new)

    async def _handle(self, batch: ReplayBatch) -> None:
        pipeline = self._pipeline
        self.recovered.inc(len(batch))
        kept = [m for m in batch if self._accepts(m[0])]
        if len(kept) < len(batch):
            # Stored in a partition that is not its id's (published there directly): refused
            # as live, or two shards would rebuild one patient.
            refused = len(batch) - len(kept)
            self._metrics.invalid.labels("wrong_partition").inc(refused)
            self._metrics.messages.labels("invalid").inc(refused)
            batch = kept
        nows = [now for _, _, now in batch]
        keys = [patient_of(t) for t, _, _ in batch]
        decoded = pipeline.decode(keys, [p for _, p, _ in batch], nows)
        position = 0
        while position < len(nows):
            # Up to the room left in the batch (a payload queues at most one job, a block
            # one per sample), so that a forward holds about `max_batch` jobs.
            end = position + max(1, self._max_batch - len(pipeline.batcher))
            self._decided(pipeline.ingest(decoded.slice(position, end), nows[position:end]))
            if len(pipeline.batcher) >= self._max_batch:
                await self._submit(pipeline.drain_all())
            position = end

    async def _submit(self, jobs: list[Job]) -> None:
        """Start the forward of `jobs` after scoring the one in flight: one forward runs on
        the inference thread while the next batch is fetched and ingested."""
        await self._finish()
        if jobs:
            windows = self._pipeline.stack(jobs)
            self._inflight = (jobs, windows, asyncio.ensure_future(self._predict(windows)))

    async def _finish(self) -> None:
        """Score the forward in flight, if any, on the stream's clock."""
        if self._inflight is None:
            return
        jobs, windows, future = self._inflight
        self._inflight = None
        try:
            predictions = await future
        except Exception as exc:  # counted as live: outcome `failed`; the next batch may pass
            log.error("inference_failed", error=repr(exc), jobs_lost=len(jobs), recovery=True)
            self._pipeline.inference_failed(jobs)
            return
        now = max(job.received_at for job in jobs)
        self._decided(self._pipeline.score(jobs, predictions, now, live=False, windows=windows))
