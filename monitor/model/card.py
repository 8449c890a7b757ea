"""The model card: everything needed to serve and judge a model, stored as ``card.json``.

Every field is documented in ``docs/model-card.md``. The card is validated on load
(pydantic, unknown keys refused), so a card that does not describe a usable model fails
before any weight is read.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.vitals import VITALS
from monitor.model.features import Centring

#: Version of the card.json layout; bumped on any incompatible change.
FORMAT_VERSION: Literal[1] = 1

Scalar = str | int | float | bool | None

#: Longest window a card may declare: the window store preallocates `window` samples for
#: each of up to `window.max_patients` patients (10,000 x 10,000 x 6 float32 is 2.4 GB),
#: and a larger one (a hostile card) would fail only at that allocation.
MAX_WINDOW = 10_000


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hyperparameters(_Strict):
    """`MedicalLSTM` constructor arguments."""

    input_size: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_layers: int = Field(ge=1)
    output_size: int = Field(ge=1)


class Normalisation(_Strict):
    """Per-feature z-score statistics, in feature order, raw units.

    With ``centring = "window_mean"`` each window's own per-feature mean is subtracted first
    (and added back to the output); `mean` and `std` then describe centred values.
    """

    mean: list[float]
    std: list[float]
    centring: Centring = "none"


class Pooling(_Strict):
    """How a window is shortened before the LSTM (`monitor.model.features.pool_window`)."""

    recent: int = Field(ge=1)
    block: int = Field(ge=1)


class TrainingInfo(_Strict):
    """How the model was trained: recipe, seed, optimiser settings and data."""

    recipe: str
    seed: int
    epochs: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    data: str
    details: dict[str, Scalar] = Field(default_factory=dict)


class FeatureMetrics(_Strict):
    """Test-split errors of one feature (or all features pooled), in raw units."""

    test_rmse: float
    persistence_rmse: float
    noise_floor_rmse: float | None
    n_test: int = Field(ge=0)


class Metrics(_Strict):
    """Test metrics overall and per feature, plus recipe-specific extras."""

    overall: FeatureMetrics
    per_feature: dict[str, FeatureMetrics]
    extra: dict[str, float] = Field(default_factory=dict)


class ModelCard(_Strict):
    """The contents of ``card.json``; see ``docs/model-card.md``."""

    format_version: Literal[1] = FORMAT_VERSION
    model_version: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    hyperparameters: Hyperparameters
    features: list[str] = Field(min_length=1)
    window: int = Field(ge=1, le=MAX_WINDOW)
    sample_period_s: float = Field(gt=0)
    normalisation: Normalisation
    pooling: Pooling | None = None
    observed_mask: bool = False
    residual_sigma: list[float]
    training: TrainingInfo
    library_versions: dict[str, str]
    metrics: Metrics

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        n = len(self.features)
        unknown = [f for f in self.features if f not in VITALS]
        if unknown:
            raise ValueError(f"unknown feature(s) {unknown}; known vitals: {sorted(VITALS)}")
        if len(set(self.features)) != n:
            raise ValueError(f"duplicate features in {self.features}")
        hp = self.hyperparameters
        inputs = 2 * n if self.observed_mask else n
        if hp.input_size != inputs or hp.output_size != n:
            raise ValueError(
                f"{n} features{' with observed mask' if self.observed_mask else ''} but "
                f"input_size={hp.input_size}, output_size={hp.output_size}"
            )
        for name, values in (
            ("normalisation.mean", self.normalisation.mean),
            ("normalisation.std", self.normalisation.std),
            ("residual_sigma", self.residual_sigma),
        ):
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values for {n} features")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} has a non-finite value: {values}")
        if self.pooling is not None:
            old = self.window - self.pooling.recent
            if old <= 0 or old % self.pooling.block:
                raise ValueError(
                    f"pooling: window - recent ({old}) must be a positive multiple of "
                    f"block ({self.pooling.block})"
                )
        if any(v <= 0 for v in self.normalisation.std):
            raise ValueError(f"normalisation.std must be > 0: {self.normalisation.std}")
        if any(v <= 0 for v in self.residual_sigma):
            raise ValueError(f"residual_sigma must be > 0: {self.residual_sigma}")
        return self

    def feature_index(self, name: str) -> int:
        """Return the column of feature `name` in the model's tensors.

        Raises:
            KeyError: The model has no such feature.
        """
        try:
            return self.features.index(name)
        except ValueError:
            raise KeyError(f"model has no feature {name!r}; it has {self.features}") from None

    def to_json(self) -> str:
        """Serialise to the text written as ``card.json``."""
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse and validate ``card.json`` text.

        Raises:
            pydantic.ValidationError: The text is not a valid card.
        """
        return cls.model_validate_json(text)
