"""One-step prediction RMSE per vital, against persistence and the noise floor.

Persistence predicts each sample as the previous one; a useful model beats it. The noise floor
(the measurement noise sigma, known for simulated data) is the best any predictor can do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.slots import last_observed

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class VitalRmse:
    """Prediction RMSE of one vital.

    Attributes:
        vital: The vital's name.
        n: Number of scored samples.
        model: RMSE of the model's one-step predictions, in the vital's unit.
        persistence: RMSE of predicting each sample by the vital's previous one (the last
            sample that carried it), same samples.
        noise_floor: The noise sigma, where known.
    """

    vital: str
    n: int
    model: float | None
    persistence: float | None
    noise_floor: float | None = None

    @property
    def skill(self) -> float | None:
        """1 - model / persistence: 0 is no better than persistence, 1 is perfect."""
        if self.model is None or not self.persistence:
            return None
        return 1.0 - self.model / self.persistence

    def to_json(self) -> dict[str, Any]:
        """Return the figures as a JSON-ready dict."""
        return {
            "n": self.n,
            "model": self.model,
            "persistence": self.persistence,
            "noise_floor": self.noise_floor,
            "skill_vs_persistence": self.skill,
        }


def prediction_rmse(
    series: Iterable[tuple[npt.ArrayLike, npt.ArrayLike]],
    features: Sequence[str],
    noise_floor: Mapping[str, float] | None = None,
) -> dict[str, VitalRmse]:
    """Compute per-vital RMSE over several patients' series.

    Args:
        series: Per patient, (actual, predicted), both of shape (n, F) in time order, where
            ``predicted[i]`` is the prediction for ``actual[i]``; NaN marks a missing prediction
            (warm-up) and the row is skipped for both the model and persistence.
        features: The F vital names, in column order.
        noise_floor: Vital -> noise sigma, where known.

    Returns:
        Vital name -> `VitalRmse` (None figures for a vital with no scored sample).
    """
    width = len(features)
    sq_model = np.zeros(width)
    sq_persist = np.zeros(width)
    count = np.zeros(width, dtype=np.int64)
    for actual_like, predicted_like in series:
        actual = np.asarray(actual_like, dtype=np.float64).reshape(-1, width)
        predicted = np.asarray(predicted_like, dtype=np.float64).reshape(-1, width)
        if actual.shape != predicted.shape:
            raise ValueError(f"shapes differ: actual {actual.shape}, predicted {predicted.shape}")
        if len(actual) < 2:
            continue
        # Persistence predicts the vital's last sent value: a vital at its own, slower rate
        # (absent from the samples between its own) is compared with its previous sample.
        last = last_observed(np.isfinite(actual))
        sent = np.where(last >= 0, actual[np.maximum(last, 0), np.arange(width)], np.nan)
        now, before, guess = actual[1:], sent[:-1], predicted[1:]
        ok = np.isfinite(now) & np.isfinite(before) & np.isfinite(guess)
        sq_model += np.where(ok, (guess - now) ** 2, 0.0).sum(axis=0)
        sq_persist += np.where(ok, (before - now) ** 2, 0.0).sum(axis=0)
        count += ok.sum(axis=0)
    floors = noise_floor or {}
    out: dict[str, VitalRmse] = {}
    for j, name in enumerate(features):
        n = int(count[j])
        out[name] = VitalRmse(
            vital=name,
            n=n,
            model=float(np.sqrt(sq_model[j] / n)) if n else None,
            persistence=float(np.sqrt(sq_persist[j] / n)) if n else None,
            noise_floor=floors.get(name),
        )
    return out
