"""Metrics of a trained model: test RMSE against persistence and the noise floor."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from monitor.model.card import FeatureMetrics, Metrics
from monitor.model.lstm import MedicalLSTM

FloatArray = npt.NDArray[np.floating]


def predict_normalised(
    model: MedicalLSTM, x: FloatArray, device: str = "cpu", batch: int = 4096
) -> FloatArray:
    """Run the model on normalised windows ``(N, window, F)`` in chunks; (N, F) out."""
    outs = []
    model.eval()
    with torch.inference_mode():
        for i in range(0, x.shape[0], batch):
            chunk = torch.from_numpy(np.asarray(x[i : i + batch], dtype=np.float32))
            outs.append(model(chunk.to(device)).to("cpu").numpy())
    if not outs:
        return np.empty((0, x.shape[2]), dtype=np.float32)
    return np.concatenate(outs)


def rmse(a: FloatArray, b: FloatArray) -> FloatArray:
    """Per-column root mean squared difference of two ``(N, F)`` arrays (a NaN, a value
    not sampled, is left out)."""
    diff = np.asarray(a, dtype=np.float64) - np.asarray(b, dtype=np.float64)
    out: FloatArray = np.sqrt(np.nanmean(diff**2, axis=0))
    return out


def residual_sigma(pred: FloatArray, y: FloatArray) -> list[float]:
    """Per-feature standard deviation of the residuals ``y - pred``, raw units (a NaN
    target, a value not sampled, is left out)."""
    resid = np.asarray(y, dtype=np.float64) - np.asarray(pred, dtype=np.float64)
    return [float(max(s, 1e-9)) for s in np.nanstd(resid, axis=0)]


def _overall(per_feature: FloatArray, std: FloatArray) -> float:
    # Vitals have different units, so the pooled figure is in z-score units: each
    # feature's RMSE divided by its normalisation std, then the root mean square.
    return float(np.sqrt(np.mean((per_feature / std) ** 2)))


def compute_metrics(
    features: tuple[str, ...],
    pred: FloatArray,
    y: FloatArray,
    last: FloatArray,
    clean_y: FloatArray | None,
    std: FloatArray,
) -> Metrics:
    """Per-feature (raw units) and overall (z-score units) test metrics.

    Args:
        features: Feature names, column order.
        pred: Raw predictions ``(N, F)``.
        y: Raw targets ``(N, F)``; NaN where a value was not sampled (left out).
        last: The last sample of each window ``(N, F)``: the persistence forecast.
        clean_y: Noiseless targets, when known: their RMSE against `y` is the noise floor.
        std: Normalisation std per feature, for the overall figure.
    """
    test = rmse(pred, y)
    persistence = rmse(last, y)
    floor = rmse(clean_y, y) if clean_y is not None else None
    n = int(y.shape[0])
    sampled = np.count_nonzero(np.isfinite(y), axis=0)
    per_feature = {
        name: FeatureMetrics(
            test_rmse=float(test[j]),
            persistence_rmse=float(persistence[j]),
            noise_floor_rmse=float(floor[j]) if floor is not None else None,
            n_test=int(sampled[j]),
        )
        for j, name in enumerate(features)
    }
    overall = FeatureMetrics(
        test_rmse=_overall(test, std),
        persistence_rmse=_overall(persistence, std),
        noise_floor_rmse=_overall(floor, std) if floor is not None else None,
        n_test=n,
    )
    return Metrics(overall=overall, per_feature=per_feature)


def metrics_table(metrics: Metrics) -> str:
    """A short text table: per feature test RMSE, persistence, noise floor and ratios."""
    lines = [
        f"{'feature':<14}{'test_rmse':>11}{'persist':>11}{'noise':>11}{'/persist':>10}{'/noise':>9}"
    ]
    rows = [*metrics.per_feature.items(), ("overall (z)", metrics.overall)]
    for name, m in rows:
        noise = f"{m.noise_floor_rmse:11.4f}" if m.noise_floor_rmse is not None else f"{'-':>11}"
        by_noise = f"{m.test_rmse / m.noise_floor_rmse:9.3f}" if m.noise_floor_rmse else f"{'-':>9}"
        by_persist = m.test_rmse / m.persistence_rmse if m.persistence_rmse else float("nan")
        lines.append(
            f"{name:<14}{m.test_rmse:11.4f}{m.persistence_rmse:11.4f}{noise}"
            f"{by_persist:10.3f}{by_noise}"
        )
    return "\n".join(lines)
