"""Small summary statistics that return None for an empty input instead of NaN."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def ratio(numerator: float, denominator: float) -> float | None:
    """Return numerator / denominator, or None when the denominator is zero."""
    return None if denominator == 0 else numerator / denominator


def median(values: Sequence[float]) -> float | None:
    """Return the median, or None for no values."""
    return None if not values else float(np.median(values))


def p95(values: Sequence[float]) -> float | None:
    """Return the 95th percentile (linear interpolation, numpy's default), or None."""
    return None if not values else float(np.percentile(values, 95))
