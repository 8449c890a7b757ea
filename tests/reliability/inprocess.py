"""An in-process `Pipeline` with its own metrics registry, for fast tests without a broker."""

from __future__ import annotations

from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core.vitals import CLINICAL_VITALS
from monitor.engine.pipeline import OUTCOMES, Job, ModelInfo, Pipeline
from monitor.service.metrics import Metrics
from monitor.settings import Settings
from tests.reliability.conftest import SIGMA


def make_pipeline(model_window: int = 4, **sections: dict[str, Any]) -> Pipeline:
    """A pipeline over the clinical vitals with settings `sections` (e.g. window={...})."""
    model = ModelInfo(
        features=CLINICAL_VITALS,
        window=model_window,
        residual_sigma=np.asarray(SIGMA, dtype=np.float64),
        version="test",
    )
    return Pipeline(model, Settings(**sections), Metrics.create(CollectorRegistry()))


def outcome_total(pipeline: Pipeline) -> float:
    """Sum of `monitor_messages_total` over every outcome.

    Reads the counters' children directly: collecting the registry per call would make the
    100k fuzz several times slower.
    """
    children = [pipeline.metrics.messages.labels(o) for o in OUTCOMES]
    return float(sum(child._value.get() for child in children))


def counter(pipeline: Pipeline, name: str, **labels: str) -> float:
    """Value of one sample of the pipeline's registry."""
    value = pipeline.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


def persistence_predictions(jobs: list[Job]) -> np.ndarray[Any, np.dtype[np.float32]]:
    """A stand-in model: predict the last value of each window (finite, no alerts)."""
    return np.stack([j.context[-1] for j in jobs]).astype(np.float32)
