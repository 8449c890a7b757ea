"""The demo's model: the one shipped with the package, or a small one trained on the spot."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from monitor.model.store import CARD_FILE, default_model_path

#: Trains in 2 to 6 s on one CPU core (small batches: more steps per epoch). In
#: one 17 s demo run it raised alerts on the same injected events as the 12-epoch default
#: recipe and none while windows first filled; fewer patients or fewer steps gave false alarms.
QUICK: dict[str, Any] = {
    "patients": 12,
    "val_patients": 2,
    "test_patients": 2,
    "seconds": 600,
    "epochs": 3,
    "batch_size": 16,
    "lr": 5e-3,
}


def cache_dir() -> Path:
    """Where a model trained on the spot is kept, so the next demo starts at once."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "vitals-monitor" / "demo-model"


def has_model(path: Path) -> bool:
    """Whether `path` holds a model directory (a card next to the weights)."""
    return (path / CARD_FILE).is_file()


def train_quick(out: Path) -> None:
    """Train a small default-recipe model into `out` (seconds on a CPU)."""
    from monitor.training.pipeline import train_model
    from monitor.training.recipes import DEFAULT
    from monitor.training.simulated import simulated_patients

    recipe = dataclasses.replace(DEFAULT, **QUICK)
    data = simulated_patients(
        recipe.patients, recipe.val_patients, recipe.test_patients, recipe.seconds, recipe.seed
    )
    train_model(data, recipe, out, device="cpu", progress=False, echo=lambda _line: None)


def resolve_model(
    explicit: Path | None, say: Callable[[str], None], cache: Path | None = None
) -> Path:
    """Return the model directory to serve, training a small one if none is available.

    Order: `explicit` (the ``--model`` option), the shipped default model, a model trained
    earlier by the demo in `cache`, and last a new quick training run into `cache`.

    Args:
        explicit: A model directory named by the user; used as is (no fallback).
        say: Where progress lines go.
        cache: Where an on-the-spot model is kept (default: `cache_dir()`).
    """
    if explicit is not None:
        return explicit
    shipped = default_model_path()
    if has_model(shipped):
        return shipped
    target = cache or cache_dir()
    if has_model(target):
        say(f"no shipped model; using the one trained earlier in {target}")
        return target
    say(f"no shipped model; training a small one into {target} (a few seconds)...")
    train_quick(target)
    return target
