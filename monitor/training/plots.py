"""The two PNG plots written next to the card: loss curve, and test predictions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt


def _pyplot() -> Any:
    import matplotlib

    # Agg: no display needed, and no GUI toolkit is imported in a server or CI.
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_loss(losses: list[float], path: Path) -> None:
    """Write the training-loss curve (mean MSE per epoch, normalised units)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(range(1, len(losses) + 1), losses, label="train loss (MSE)")
    ax.set_xlabel("epoch")
    ax.set_ylabel("mean loss")
    ax.set_title("Training loss")
    ax.grid(True)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_predictions(
    features: tuple[str, ...],
    y: npt.NDArray[np.floating],
    pred: npt.NDArray[np.floating],
    path: Path,
    limit: int = 600,
) -> None:
    """Write actual vs predicted for the first `limit` test windows, one panel per feature."""
    plt = _pyplot()
    n = len(features)
    fig, axes = plt.subplots(n, 1, figsize=(12, 2.5 * n), squeeze=False)
    for j, name in enumerate(features):
        ax = axes[j][0]
        ax.plot(y[:limit, j], ".-", color="tab:blue", label="actual (test)")
        ax.plot(pred[:limit, j], "--", color="tab:red", label="predicted")
        ax.set_ylabel(name)
        ax.grid(True)
    axes[0][0].legend(loc="upper right")
    axes[-1][0].set_xlabel("test step")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
