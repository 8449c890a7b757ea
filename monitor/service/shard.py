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
import contextlib
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import nats.errors as nats_errors
import numpy as np
import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector

from monitor.core.alerts import AlertEvent
from monitor.engine.pipeline import Job, Pipeline
from monitor.engine.ports import Worker
from monitor.engine.scheduler import Scheduler
from monitor.service.metrics import Metrics
from monitor.settings import Settings
from monitor.transports.mqtt.topics import PartitionCheck, patient_of
from monitor.transports.nats.history import (
    ReplayBatch,
    Replayed,
    published_alert_ids,
    replay,
)
from monitor.transports.nats.partition import owned_partitions

log = structlog.get_logger("monitor")

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
        worker: Runs forwards on the daemon's inference thread.
        publish: The daemon's alert path, for alerts nobody published yet.
        metrics: The daemon's metrics (the recovery metrics join its registry).
        accepts: Whether a topic's partition is its patient id's (`PartitionCheck.accepts`).
        url: NATS URL.
        stream: The stream's name.
        alerts_stream: The stream of published alerts, or None.
        prefix: The subjects' first token (``vitals``).
        partitions: The owned partitions.
        max_batch: Jobs per forward (at least `REPLAY_BATCH`: nobody waits for a verdict).
        record: Given the alert changes suppressed (published by a predecessor), for
            the open alerts (`AlertSink.record`).
    """

    def __init__(
        self,
        pipeline: Pipeline,
        worker: Worker,
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
        record: Publish | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._publish = publish
        self._record = record
        self._metrics = metrics
        self._accepts = accepts
        registry = metrics.registry
        self._alerts_stream = alerts_stream
        self._published: set[str] | None = None  # read once, on the first run
        self._url, self._stream, self._prefix = url, stream, prefix
        self._partitions = partitions
        self._max_batch = max(max_batch, REPLAY_BATCH)
        # The engine on the stream's clock: each forward's verdicts at its jobs' latest
        # receive time; one forward runs while the next batch is fetched and ingested.
        self._scheduler: Scheduler[Job] = Scheduler(
            pipeline,
            worker,
            self,
            clock=time.time,
            timer=time.perf_counter,
            live=False,
            batch=self._max_batch,
        )
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

    @classmethod
    def for_shard(
        cls,
        settings: Settings,
        pipeline: Pipeline,
        worker: Worker,
        publish: Publish,
        metrics: Metrics,
        record: Publish | None = None,
    ) -> Recovery:
        """The recovery of the shard `settings.shard` names, from `settings.nats`."""
        shard = settings.shard
        assert shard.count is not None  # a shard
        assert settings.nats.url  # with a stream
        owned = owned_partitions(shard.index, shard.count, shard.partitions)
        return cls(
            pipeline,
            worker,
            publish,
            metrics,
            PartitionCheck(shard.partitions, owned).accepts,
            url=settings.nats.url,
            stream=settings.nats.stream,
            alerts_stream=settings.nats.alerts_stream,
            prefix=shard.topic_prefix.replace("/", "."),
            partitions=owned,
            max_batch=settings.batch.max_batch,
            record=record,
        )

    async def recover(self, start_seq: int, timeout_s: float) -> int | None:
        """Replay from `start_seq` within `timeout_s`, logged; return the stream's last
        sequence, None on failure (logged: the shard then goes on without it)."""
        t0 = time.perf_counter()
        try:
            done = await asyncio.wait_for(self.run(start_seq), timeout_s)
        except (OSError, TimeoutError, nats_errors.Error) as exc:
            log.error("recovery_failed", error=repr(exc), start_seq=start_seq)
            return None
        log.info(
            "recovered",
            messages=done.messages,
            start_seq=start_seq,
            last_seq=done.last_seq,
            seconds=round(time.perf_counter() - t0, 3),
            patients=len(self._pipeline.windows),
            alerts_suppressed=self.suppressed_total,
            alerts_published=self.published_total,
        )
        return done.last_seq

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
        while self._pipeline.pending:
            self._scheduler.submit()
            await self._settle(1)
        await self._settle(0)
        self.duration.inc(time.perf_counter() - t0)
        return done

    def _decided(self, events: list[AlertEvent]) -> None:
        """Publish the replay's alert changes that nobody published; count the others."""
        if not events:
            return
        published = self._published
        new = [] if published is None else [e for e in events if e.id not in published]
        suppressed = events if published is None else [e for e in events if e.id in published]
        self.suppressed_total += len(suppressed)
        self.suppressed.inc(len(suppressed))
        if self._record is not None and suppressed:
            self._record(suppressed)
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
            end = position + max(1, self._max_batch - pipeline.pending)
            self._decided(pipeline.ingest(decoded.slice(position, end), nows[position:end]))
            if pipeline.pending >= self._max_batch:
                self._scheduler.submit()
                await self._settle(1)
            position = end

    async def _settle(self, keep: int) -> None:
        """Score the oldest forwards, awaiting each, until at most `keep` are in flight."""
        scheduler = self._scheduler
        while scheduler.in_flight > keep:
            future = scheduler.oldest()
            assert future is not None  # in flight
            with contextlib.suppress(Exception):  # scored as failed by `score_done`
                await asyncio.wrap_future(future)
            self._decided(scheduler.score_done())

    def forward_failed(self, jobs: Sequence[Job], error: BaseException) -> None:
        """A replayed batch's forward raised (the engine's `Report`): counted as live,
        outcome `failed`; the next batch may pass."""
        log.error("inference_failed", error=repr(error), jobs_lost=len(jobs), recovery=True)

    def forward_scored(
        self, jobs: Sequence[Job], predictions: np.ndarray[Any, Any], seconds: float
    ) -> None:
        """A replayed batch is scored (the engine's `Report`): nothing to record."""
