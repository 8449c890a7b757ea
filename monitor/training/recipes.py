"""Training recipes: every knob of a training run, with the shipped presets.

A recipe is plain data; the command line overrides fields with `dataclasses.replace`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from monitor.model.features import Centring

Schedule = Literal["constant", "cosine"]


@dataclass(frozen=True, slots=True)
class Recipe:
    """Everything that decides a training run's result (with the data).

    Attributes:
        name: ``default``, ``seed`` or ``data``; recorded in the card.
        window: Past samples per input window.
        hidden_size: LSTM hidden size.
        num_layers: LSTM layers.
        epochs: Passes over the training windows.
        batch_size: Windows per optimiser step.
        lr: Adam learning rate (the peak, with the cosine schedule).
        schedule: ``constant`` (the seed) or ``cosine`` decay to 0 over the run.
        normalise: Z-score features with training statistics (the seed does not).
        centring: Subtract each window's own mean first (``window_mean``) or not (``none``).
        pool_recent: Pooling: the last samples fed to the LSTM as they are (None: no pooling).
        pool_block: Pooling: older samples are fed as means of this many.
        augment: Extra training windows with one vital disturbed, as a fraction of the
            training windows (`monitor.training.augment`); 0: none.
        mask: Share of the training windows given random observation patterns
            (`monitor.training.masking`); above 0 the model takes an observed mask per
            vital (``observed_mask`` in the card) and serves any subset of its vitals.
        seed: Seeds weights, shuffling and generated data.
        train_stride: Keep every n-th training window (1: all). A stride saves memory, but
            neighbouring windows have different noisy targets: every 4th window for 60
            epochs over-fitted where every window for 15 did not.
        patients: Simulated training patients (default recipe).
        val_patients: Simulated validation patients.
        test_patients: Simulated test patients.
        seconds: Samples (1 Hz) per simulated patient.
        split: Fraction of each recording's rows used for training (data recipe).
        val_fraction: Last fraction of the training rows held out for validation.
    """

    name: str
    window: int
    hidden_size: int
    num_layers: int
    epochs: int
    batch_size: int
    lr: float
    schedule: Schedule
    normalise: bool
    centring: Centring = "none"
    pool_recent: int | None = None
    pool_block: int = 1
    augment: float = 0.0
    mask: float = 0.0
    seed: int = 0
    train_stride: int = 1
    patients: int = 0
    val_patients: int = 0
    test_patients: int = 0
    seconds: int = 0
    split: float = 0.8
    val_fraction: float = 0.15


#: Simulated patients; window, pooling, data size and epochs chosen to approach the noise
#: floor within the 5-minute budget (see README and docs/model-card.md).
DEFAULT = Recipe(
    name="default",
    window=120,
    hidden_size=32,
    num_layers=1,
    epochs=15,
    batch_size=256,
    lr=5e-3,
    schedule="cosine",
    normalise=True,
    centring="window_mean",
    pool_recent=20,
    pool_block=5,
    augment=0.3,
    mask=0.4,
    train_stride=1,
    patients=48,
    val_patients=4,
    test_patients=8,
    seconds=3600,
)

#: The seed tutorial's experiment, unchanged.
SEED = Recipe(
    name="seed",
    window=10,
    hidden_size=50,
    num_layers=2,
    epochs=50,
    batch_size=32,
    lr=1e-3,
    schedule="constant",
    normalise=False,
    split=0.8,
)

#: The user's recordings: a chronological split.
DATA = Recipe(
    name="data",
    window=10,
    hidden_size=32,
    num_layers=1,
    epochs=40,
    batch_size=32,
    lr=3e-3,
    schedule="cosine",
    normalise=True,
    split=0.7,
    val_fraction=0.15,
)

RECIPES: dict[str, Recipe] = {r.name: r for r in (DEFAULT, SEED, DATA)}
