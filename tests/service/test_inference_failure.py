"""A model forward that raises: its jobs end in outcome `failed`, the daemon goes on."""

from __future__ import annotations

import asyncio
from typing import Any

import numpy as np
import pytest

from monitor.engine.pipeline import Job
from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.service.app import Daemon
from monitor.service.main import compose
from monitor.settings import Settings


class _Broken:
    """A predictor whose forward raises, with the shipped model's card."""

    def __init__(self, card: Any) -> None:
        self.card = card

    def predict(self, windows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        raise RuntimeError("forward failed")


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(load_model(default_model_path()), "cpu")


def _jobs(n: int) -> list[Job]:
    # The shipped model's windows: 6 vitals, then their observed flags (all observed).
    context = np.concatenate(
        [np.full((120, 6), 80.0, dtype=np.float32), np.ones((120, 6), dtype=np.float32)], axis=1
    )
    actual = np.full(6, 80.0)
    return [Job(f"p{i}", context, actual, 1.0e9 + i, i, 1.0e9 + i) for i in range(n)]


def _outcome(daemon: Daemon, outcome: str) -> float:
    value = daemon.metrics.registry.get_sample_value("monitor_messages_total", {"outcome": outcome})
    return 0.0 if value is None else float(value)


def _queue(daemon: Daemon, jobs: list[Job]) -> None:
    """Queue the jobs as if their windows were ready: their patients are held (a job of a
    patient the window store does not hold is dropped, not scored)."""
    ids = [j.patient_id for j in jobs]
    fresh = [j for j in jobs if j.patient_id not in daemon.pipeline.windows]
    if fresh:
        daemon.pipeline.windows.push(
            [j.patient_id for j in fresh],
            [j.t - 1.0 for j in fresh],
            [j.seq - 1 for j in fresh],
            np.stack([j.actual for j in fresh]),
            [j.received_at - 1.0 for j in fresh],
        )
    daemon.pipeline.batcher.add(ids, jobs, [j.received_at for j in jobs])


def test_a_failed_forward_counts_its_jobs_failed(predictor: Predictor) -> None:
    """The callback path (the scheduler's `score_done`): every job of the batch is counted
    `failed`, none `scored`; a later good batch is scored as usual."""
    daemon = compose(Settings(), predictor)
    daemon.predictor = _Broken(predictor.card)  # type: ignore[assignment]
    _queue(daemon, _jobs(3))
    assert daemon.scheduler.submit()
    bad = daemon.scheduler.oldest()
    assert bad is not None
    with pytest.raises(RuntimeError):
        bad.result(timeout=30)
    daemon.scheduler.score_done()
    assert _outcome(daemon, "failed") == 3
    assert _outcome(daemon, "scored") == 0
    daemon.predictor = predictor
    _queue(daemon, _jobs(3))
    assert daemon.scheduler.submit()
    good = daemon.scheduler.oldest()
    assert good is not None
    good.result(timeout=30)
    daemon.scheduler.score_done()
    assert _outcome(daemon, "scored") == 3
    assert daemon.scheduler.in_flight == 0
    daemon._executor.shutdown()


def test_a_failed_forward_in_the_final_flush_is_counted_not_raised(predictor: Predictor) -> None:
    """The awaited path (`_final_flush`) counts the failed batch and returns."""
    daemon = compose(Settings(), predictor)
    daemon.predictor = _Broken(predictor.card)  # type: ignore[assignment]
    _queue(daemon, _jobs(4))
    asyncio.run(daemon.final_flush())
    assert _outcome(daemon, "failed") == 4
    assert daemon.pipeline.pending == 0
    daemon._executor.shutdown()
