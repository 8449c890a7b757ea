"""One training run: split data -> windows -> fit -> evaluate -> model directory."""

from __future__ import annotations

import platform
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from monitor.core.vitals import BUILTIN, Registry
from monitor.model.card import (
    Hyperparameters,
    ModelCard,
    Normalisation,
    Pooling,
    TrainingInfo,
    signal_specs,
)
from monitor.model.features import (
    MIN_STD,
    Preprocess,
    fit_normalisation,
    window_offset,
    with_flags,
)
from monitor.model.lstm import MedicalLSTM
from monitor.model.store import save_model
from monitor.training.augment import augment, noise_sigma
from monitor.training.calibration import REAL_DATA_CLIP_AT, calibrate
from monitor.training.data import SplitData, cut_windows, require_windows
from monitor.training.evaluation import compute_metrics, predict_normalised, residual_sigma
from monitor.training.loop import fit
from monitor.training.masking import mask_windows
from monitor.training.plots import plot_loss, plot_predictions
from monitor.training.recipes import Recipe
from monitor.training.repeats import flatline_rules
from monitor.training.rhythm import rhythm_specs

#: Fewer validation windows than this cannot measure the residual spread: the training
#: windows' residuals are measured with them (`residual_sigma_source` says so).
MIN_VALIDATION_WINDOWS = 20


@dataclass(frozen=True, slots=True)
class TrainResult:
    """What a run produced.

    Attributes:
        card: The card as written (with the real model version and metrics).
        losses: Mean training loss per epoch.
        seconds: Wall time of data preparation, fitting and evaluation.
        seed_style: ``(mse, rmse)`` computed as the seed does: over the test windows of
            complete batches only (its test loader drops the last batch); None for other
            recipes.
    """

    card: ModelCard
    losses: list[float]
    seconds: float
    seed_style: tuple[float, float] | None


@contextmanager
def _deterministic() -> Iterator[None]:
    # Same seed + same data => same weights on CPU; restore the caller's setting after.
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def library_versions() -> dict[str, str]:
    """Versions of the libraries that decide a model's numbers."""
    try:
        own = metadata.version("vitals-monitor")
    except metadata.PackageNotFoundError:
        own = "unknown"
    return {
        "torch": torch.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "vitals-monitor": own,
    }


def pooling_of(recipe: Recipe) -> Pooling | None:
    """The recipe's window pooling; None when it pools nothing (no recent, or a short window).

    Raises:
        ValueError: ``window - pool_recent`` is not a multiple of ``pool_block``.
    """
    if recipe.pool_recent is None or recipe.pool_recent >= recipe.window:
        return None
    old = recipe.window - recipe.pool_recent
    if old % recipe.pool_block:
        raise ValueError(
            f"window ({recipe.window}) - pool_recent ({recipe.pool_recent}) = {old} is not a "
            f"multiple of pool_block ({recipe.pool_block})"
        )
    return Pooling(recent=recipe.pool_recent, block=recipe.pool_block)


def train_model(
    data: SplitData,
    recipe: Recipe,
    out: Path,
    *,
    device: str = "cpu",
    progress: bool = True,
    echo: Callable[[str], None] = print,
    signals: Registry = BUILTIN,
) -> TrainResult:
    """Train a `MedicalLSTM` on `data` with `recipe` and write the model directory.

    Args:
        data: Train / validation / test segments.
        recipe: Hyper-parameters and seed.
        out: Model directory to write (``model.safetensors``, ``card.json``, two PNGs).
        device: Torch device to train on (weights are identical run to run on CPU).
        progress: Show a progress bar over epochs on stderr.
        echo: Where the seed recipe's per-5-epoch loss lines go.
        signals: Where the features are resolved; the card lists each registered (not
            built-in) feature with its unit and bounds.

    Raises:
        DataError: A split yields no window.
    """
    started = time.perf_counter()
    n_feat = len(data.features)
    # Strided before stacking when the recipe asks: a stride saves memory, but the default
    # recipe keeps every window (217,152; training peaks at 4.6 GiB RSS), because every 4th
    # window for 4x the epochs over-fitted the noise of the targets it saw (README).
    train = cut_windows(data.train, recipe.window, n_feat, recipe.train_stride)
    test = cut_windows(data.test, recipe.window, n_feat)
    # No validation split (the seed recipe): the residual sigma comes from training windows.
    val = cut_windows(data.val, recipe.window, n_feat) if data.val else train
    for part, windows in (("training split", train), ("test split", test), ("validation", val)):
        require_windows(windows, part, recipe.window)
    centring = recipe.centring
    mean: np.ndarray
    std: np.ndarray
    if not recipe.normalise:
        mean, std = np.zeros(n_feat), np.ones(n_feat)
    elif centring == "none":
        mean, std = fit_normalisation([s.values for s in data.train])
    elif centring == "last":
        # Inputs are the window's deviations from its last sample: their spread scales
        # inputs and targets (a next sample's change is a fraction of it).
        deviations = train.x - train.x[:, -1:, :]
        mean = np.zeros(n_feat)
        std = np.maximum(np.sqrt(np.nanmean(deviations**2, axis=(0, 1))), MIN_STD)
    else:
        # Centred values: the statistics of next samples relative to their window's mean.
        mean, std = fit_normalisation([train.y - window_offset(train.x, centring)])
    pooling = pooling_of(recipe)
    recent = None if pooling is None else pooling.recent
    masked = recipe.mask > 0
    prep = Preprocess(mean, std, centring, recent=recent, block=recipe.pool_block, masked=masked)
    raw_x, raw_y, weight = train.x, train.y, None
    w = None
    if recipe.augment > 0:
        rng = np.random.default_rng([recipe.seed, 0xA06])
        raw_x, raw_y, w = augment(raw_x, raw_y, noise_sigma(data.train), recipe.augment, rng)
    if masked:
        rng = np.random.default_rng([recipe.seed, 0x3A5C])
        ones = np.ones(raw_y.shape, dtype=np.float64)
        seen = train.observed
        if seen is not None and len(raw_x) > len(seen):  # augmented copies: all sampled
            extra = np.ones((len(raw_x) - len(seen), *seen.shape[1:]), dtype=np.bool_)
            seen = np.concatenate([seen, extra])
        raw_x, w = mask_windows(raw_x, ones if w is None else w, recipe.mask, rng, seen)
    if w is not None:
        weight = torch.from_numpy(w.astype(np.float32)).to(device)
    x_train, off_train = prep.inputs(raw_x)
    del raw_x
    y_train = np.nan_to_num(prep.targets(raw_y, off_train), nan=0.0)
    torch.manual_seed(recipe.seed)
    inputs = 2 * n_feat if masked else n_feat
    model = MedicalLSTM(inputs, recipe.hidden_size, recipe.num_layers, n_feat).to(device)
    bar = tqdm(total=recipe.epochs, desc="epochs", disable=not progress, unit="epoch")

    def on_epoch(epoch: int, loss: float) -> None:
        bar.update(1)
        bar.set_postfix(loss=f"{loss:.4f}")
        if recipe.name == "seed" and epoch % 5 == 0:
            # The seed's report line, in English.
            line = f"Epoch [{epoch}/{recipe.epochs}], Loss: {loss:.4f}"
            # tqdm.write keeps the line from tearing the progress bar.
            (tqdm.write if progress else echo)(line)

    with _deterministic():
        losses = fit(
            model,
            torch.from_numpy(x_train).to(device),
            torch.from_numpy(y_train).to(device),
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            schedule=recipe.schedule,
            seed=recipe.seed,
            weight=weight,
            on_epoch=on_epoch,
        )
    bar.close()

    def predict(x: np.ndarray) -> np.ndarray:
        """Raw windows ``(N, W, F)``, or ``(N, W, 2F)`` with their observed flags, ->
        raw predictions."""
        if x.shape[-1] == n_feat:
            x = with_flags(x) if masked else x
        elif not masked:
            x = x[..., :n_feat]
        inputs, offset = prep.inputs(x)
        return prep.outputs(predict_normalised(model, inputs, device), offset)

    test_pred = predict(test.flagged() if masked else test.x)
    # Too few validation windows to measure a spread (a long window on a short training
    # part leaves one: its sigma was 0): the residuals of the training windows join them.
    sigma_src = "validation" if data.val else "training"
    if data.val and len(val) < MIN_VALIDATION_WINDOWS:
        val = cut_windows([*data.train, *data.val], recipe.window, n_feat)
        sigma_src = "training+validation"
    val_pred = predict(val.flagged() if masked else val.x)
    # Scored where sampled (a held value is not: serving scores what a sample carries);
    # persistence is the last value, sampled or held: the last sample.
    metrics = compute_metrics(
        data.features, test_pred, test.sampled_y(), test.x[:, -1, :], test.clean_y, std
    )
    seed_style = None
    if recipe.name == "seed":
        # The seed's test loader has drop_last=True: only complete batches are scored.
        kept = (len(test) // recipe.batch_size) * recipe.batch_size
        mse = float(np.mean((test_pred[:kept] - test.y[:kept]) ** 2))
        seed_style = (mse, float(np.sqrt(mse)))
        metrics = metrics.model_copy(
            update={
                "extra": {
                    "seed_style_test_mse": mse,
                    "seed_style_test_rmse": seed_style[1],
                    "seed_style_n_test": float(kept),
                }
            }
        )
    details = {k: v for k, v in asdict(recipe).items() if k not in ("name", "seed", "epochs")}
    details.update(
        train_windows=int(x_train.shape[0]),
        val_windows=len(val),
        residual_sigma_source=sigma_src,
        device=device,
    )
    sigma = residual_sigma(val_pred, val.sampled_y())
    # The alarm levels' gain curves: the detector's raise rate on every series before the
    # test split, unaugmented and in time order, scored as serving scores them.
    # A real recording's residuals are heavy-tailed; the simulator's are Gaussian by
    # construction, and its anomaly-dense patients keep the |z| < 3 scale (docs/detection.md).
    clip_at = REAL_DATA_CLIP_AT if recipe.name == "data" else None
    calibration = calibrate(
        [*data.train, *data.val], predict, window=recipe.window, features=data.features,
        sample_period_s=data.sample_period_s, residual_sigma=sigma, clip_at=clip_at,
    )  # fmt: skip
    card = ModelCard(
        model_version="0" * 64,
        created_at=datetime.now(UTC),
        hyperparameters=Hyperparameters(
            input_size=inputs,
            hidden_size=recipe.hidden_size,
            num_layers=recipe.num_layers,
            output_size=n_feat,
        ),
        features=list(data.features),
        window=recipe.window,
        sample_period_s=data.sample_period_s,
        normalisation=Normalisation(
            mean=[float(v) for v in mean], std=[float(v) for v in std], centring=centring
        ),
        pooling=pooling,
        observed_mask=masked,
        signals=signal_specs(data.features, signals),
        flatline=flatline_rules(data.train, data.features, signals),
        rhythm=rhythm_specs(data.train, data.features, data.sample_period_s, signals),
        residual_sigma=sigma,
        training=TrainingInfo(
            recipe=recipe.name,
            seed=recipe.seed,
            epochs=recipe.epochs,
            batch_size=recipe.batch_size,
            lr=recipe.lr,
            data=data.description,
            details=details,
        ),
        library_versions=library_versions(),
        metrics=metrics,
        calibration=calibration,
        residual_clip_at=clip_at,
    )
    elapsed = time.perf_counter() - started
    card = save_model(out, model.to("cpu"), card)
    plot_loss(losses, out / "loss.png")
    plot_predictions(data.features, test.y, test_pred, out / "test_predictions.png")
    return TrainResult(card=card, losses=losses, seconds=elapsed, seed_style=seed_style)
