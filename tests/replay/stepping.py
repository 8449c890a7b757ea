"""The reference driver of offline-replay tests: the live path's calls, record by record."""

from __future__ import annotations

from monitor.model.predictor import Predictor
from monitor.replay.offline import OfflineRunner
from monitor.replay.recording import Record
from monitor.settings import Settings
from tests.support.ingest import ingest_one


def stepped(records: list[Record], predictor: Predictor, settings: Settings) -> OfflineRunner:
    """`Pipeline.ingest` record by record, flushes as `feed` makes them, and every
    housekeeping pass run, one per interval from the first record's time (as the replay did
    before it jumped); `housekeeping_passes` counts them."""
    runner = OfflineRunner(predictor, settings)
    pipeline, interval = runner.pipeline, runner.settings.housekeeping_interval_s
    next_pass: float | None = None
    passes = 0
    for record in records:
        now = record.received_at
        if next_pass is None:
            next_pass = now + interval
        while now >= next_pass:
            runner.alerts += pipeline.housekeeping(next_pass)
            passes += 1
            next_pass += interval
        runner.alerts += ingest_one(pipeline, record.topic, record.payload, now)
        if pipeline.pending >= runner.settings.batch.max_batch:
            runner.alerts += runner.scheduler.flush(now)
    runner.finish()
    runner.ticks.passes = passes  # the count `housekeeping_passes` reports
    return runner


def metric_counts(runner: OfflineRunner) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every metric sample of the runner's registry (but `_created`), by name and labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for metric in runner.metrics.registry.collect()
        for s in metric.samples
        if not s.name.endswith("_created")
    }
