"""BatchHistogram: the same exposition as prometheus-client's Histogram, without its privates."""

from __future__ import annotations

import numpy as np
from prometheus_client import CollectorRegistry, Histogram

from monitor.service.metrics import SIGMA_BUCKETS, BatchHistogram, observe_many


def samples(registry: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample but `_created`, keyed by name and sorted labels."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in registry.collect()
        for s in family.samples
        if not s.name.endswith("_created")
    }


def test_batch_histogram_exposes_what_a_histogram_would() -> None:
    """Values observed in batches (edges, +Inf, two label sets) give the buckets, counts and
    sums a prometheus-client Histogram gives when observing them one by one."""
    values = np.array([0.0, 0.25, 0.2500001, 1.0, 3.0, 12.0, 16.0, 99.0, 0.1, 5.5])
    reference, batched = CollectorRegistry(), CollectorRegistry()
    plain = Histogram("x", "help", ["vital"], buckets=SIGMA_BUCKETS, registry=reference)
    ours = BatchHistogram("x", "help", ["vital"], buckets=SIGMA_BUCKETS, registry=batched)
    for vital, part in (("hr", values), ("spo2", values[:3])):
        for v in part:
            plain.labels(vital).observe(float(v))
        observe_many(ours.labels(vital), part[:4])
        observe_many(ours.labels(vital), part[4:])
        observe_many(ours.labels(vital), part[:0])  # an empty batch changes nothing
    assert samples(batched) == samples(reference)
