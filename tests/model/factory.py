"""Builders of small models and cards for the model and training tests."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import torch

from monitor.model.card import (
    FeatureMetrics,
    Hyperparameters,
    Metrics,
    ModelCard,
    Normalisation,
    TrainingInfo,
)
from monitor.model.lstm import MedicalLSTM
from monitor.model.store import save_model

FEATURES = ["heart_rate", "spo2"]


def tiny_model(seed: int = 0, hidden: int = 8, layers: int = 2) -> MedicalLSTM:
    """A seeded two-feature model."""
    torch.manual_seed(seed)
    return MedicalLSTM(len(FEATURES), hidden, layers, len(FEATURES))


def make_card(hidden: int = 8, layers: int = 2, window: int = 5) -> ModelCard:
    """A valid card for `tiny_model` (model_version is a placeholder until saved)."""
    m = FeatureMetrics(test_rmse=1.0, persistence_rmse=1.4, noise_floor_rmse=0.9, n_test=10)
    return ModelCard(
        model_version="0" * 64,
        created_at=datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC),
        hyperparameters=Hyperparameters(
            input_size=2, hidden_size=hidden, num_layers=layers, output_size=2
        ),
        features=list(FEATURES),
        window=window,
        sample_period_s=1.0,
        normalisation=Normalisation(mean=[80.0, 97.0], std=[10.0, 1.5]),
        residual_sigma=[2.0, 0.5],
        training=TrainingInfo(
            recipe="test", seed=0, epochs=1, batch_size=4, lr=1e-3, data="unit test"
        ),
        library_versions={"torch": torch.__version__},
        metrics=Metrics(overall=m, per_feature={"heart_rate": m, "spo2": m}),
    )


def write_model_dir(path: Path, seed: int = 0) -> ModelCard:
    """Save a tiny model and its card under `path`; return the card as written."""
    return save_model(path, tiny_model(seed), make_card())
