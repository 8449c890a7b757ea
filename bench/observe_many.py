"""Per-observation cost of `observe_many` (docs/architecture.md, quarantine paragraph).

``PYTHONPATH=. python bench/observe_many.py``: batches of 1 and 200 |z| values into the
prediction-error histogram's child, best of 5 x 20,000 calls.
"""

from __future__ import annotations

import timeit

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.service import metrics


def main() -> None:
    """Print the cost per call and per observation."""
    histogram = metrics.Metrics.create(CollectorRegistry()).prediction_error.labels("heart_rate")
    values = np.abs(np.random.default_rng(0).normal(size=200))
    n = 20_000
    for size in (1, 200):
        batch = values[:size]
        best = min(
            timeit.repeat(lambda b=batch: metrics.observe_many(histogram, b), number=n, repeat=5)
        )
        print(f"batch {size}: {best / n * 1e6:.2f} us per call, {best / n / size * 1e9:.0f} ns/obs")


if __name__ == "__main__":
    main()
