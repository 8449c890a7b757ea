"""`monitor train`: train a MedicalLSTM and write a model directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from monitor.commands.signals import registry_of, signal_option
from monitor.errors import DataError

if TYPE_CHECKING:
    from monitor.training.data import SplitData
    from monitor.training.recipes import Recipe
    from monitor.training.recordings import TrainRange


#: Torch threads for the data recipe unless --threads says otherwise.
DATA_THREADS = 1


class DataProblem(click.ClickException):
    """Unusable training data or device: a one-line message and exit code 2, like a usage
    error."""

    exit_code = 2


def _column_map(values: tuple[str, ...]) -> dict[str, str]:
    mapping: dict[str, str] = {}
    for item in values:
        name, sep, vital = item.partition("=")
        if not sep or not name or not vital:
            raise click.BadParameter(f"expected NAME=vital, got {item!r}", param_hint="--column")
        mapping[name] = vital
    return mapping


@click.command("train")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    required=True,
    help="Model directory to write.",
)
@click.option(
    "--recipe",
    type=click.Choice(["default", "seed", "data"]),
    default=None,
    help="default: simulated patients; seed: the tutorial's sine; data: --data files.",
)
@click.option(
    "--data",
    "data_files",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    multiple=True,
    help="Recordings to train on: CSV, or the replay format (.jsonl[.gz], one series per "
    "patient); implies --recipe data.",
)
@click.option(
    "--column",
    "columns",
    multiple=True,
    metavar="NAME=VITAL",
    help="Map a file column to a vital, e.g. HR=heart_rate.",
)
@click.option("--feature", "features", multiple=True, help="Vital(s) to use, in model order.")
@signal_option
@click.option("--zero-is-missing", is_flag=True, help="Treat 0 as a missing value (a gap).")
@click.option(
    "--split",
    type=click.FloatRange(0.05, 0.95),
    default=None,
    help="Fraction of each recording's rows used for training.",
)
@click.option(
    "--train-first",
    type=click.IntRange(min=1),
    default=None,
    metavar="N",
    help="--data: the first N samples of each recording train; the rest are held out.",
)
@click.option(
    "--train-until",
    default=None,
    metavar="TIME",
    help="--data: samples before TIME train (unix seconds, or ISO 8601 such as "
    "2023-11-14T22:15:00Z; CSV times are seconds from the start); the rest are held out.",
)
@click.option(
    "--train-fraction",
    type=click.FloatRange(0.0, 1.0, min_open=True, max_open=True),
    default=None,
    metavar="F",
    help="--data: the first fraction F of each recording trains (0.15 is a common "
    "protocol); the rest are held out.",
)
@click.option(
    "--val-fraction",
    type=click.FloatRange(0.0, 0.9),
    default=None,
    help="Last fraction of the training rows held out for the residual sigma.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--window", type=click.IntRange(min=1), default=None)
@click.option("--hidden-size", type=click.IntRange(min=1), default=None)
@click.option("--num-layers", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=click.FloatRange(min=0, min_open=True), default=None)
@click.option("--seed", type=int, default=None, help="Seed of weights, shuffling and data.")
@click.option(
    "--patients",
    type=click.IntRange(min=1),
    default=None,
    help="Simulated training patients (default recipe).",
)
@click.option("--val-patients", type=click.IntRange(min=1), default=None)
@click.option("--test-patients", type=click.IntRange(min=1), default=None)
@click.option(
    "--seconds",
    type=click.IntRange(min=2),
    default=None,
    help="Samples (1 Hz) per simulated patient.",
)
@click.option(
    "--train-stride",
    type=click.IntRange(min=1),
    default=None,
    help="Keep every n-th training window.",
)
@click.option(
    "--centring",
    type=click.Choice(["none", "window_mean", "last"]),
    default=None,
    help="Subtract each window's own mean, or its last sample (the model predicts the "
    "change from it), before normalising (the recipe decides by default).",
)
@click.option(
    "--pool-recent",
    type=click.IntRange(min=1),
    default=None,
    help="Feed only the last N samples as they are; older ones as block means.",
)
@click.option(
    "--pool-block", type=click.IntRange(min=1), default=None, help="Samples per block mean."
)
@click.option(
    "--augment",
    type=click.FloatRange(0.0, 4.0),
    default=None,
    help="Extra windows with one vital disturbed, as a fraction of the training windows.",
)
@click.option(
    "--threads",
    type=click.IntRange(min=1),
    default=None,
    help="CPU threads for torch (default: 1 with --data, torch's own otherwise).",
)
@click.option("--device", default="cpu", show_default=True, help="cpu, cuda or auto.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def command(
    out: Path,
    recipe: str | None,
    data_files: tuple[Path, ...],
    columns: tuple[str, ...],
    features: tuple[str, ...],
    signals: tuple[str, ...],
    zero_is_missing: bool,
    train_first: int | None,
    train_until: str | None,
    train_fraction: float | None,
    threads: int | None,
    device: str,
    quiet: bool,
    **overrides: Any,
) -> None:
    """Train a MedicalLSTM and write OUT/model.safetensors, card.json and two plots."""
    # Imported here: `monitor --help` must not pay for torch.
    import torch

    from monitor.errors import DeviceError
    from monitor.model.predictor import resolve_device
    from monitor.training.evaluation import metrics_table
    from monitor.training.pipeline import pooling_of, train_model
    from monitor.training.recipes import RECIPES
    from monitor.training.recordings import (
        LoadOptions,
        TrainRange,
        load_recordings,
        plan_split,
        split_recordings,
    )
    from monitor.training.simulated import seed_sine, simulated_patients

    try:
        # Before any data is loaded or generated: a wrong device is known at once.
        resolved_device = resolve_device(device)
    except DeviceError as exc:
        raise DataProblem(str(exc)) from None
    registry = registry_of(signals)
    unknown = [f for f in features if f not in registry]
    if unknown:
        raise click.BadParameter(
            f"unknown vital {unknown[0]!r}; {registry.known_line()}", param_hint="--feature"
        )
    name = recipe or ("data" if data_files else "default")
    if (name == "data") != bool(data_files):
        raise click.UsageError("--data FILE is required with --recipe data, and only with it")
    train_range = _train_range(name, overrides["split"], train_first, train_until, train_fraction)
    previous_threads = torch.get_num_threads()
    if threads is not None or name == "data":
        # One thread for the small per-stream models: with two, on a busy 2-core machine
        # (load 8 to 11), the MIT-BIH ECG run took over 36 minutes where one thread took 72 s;
        # their LSTM steps are too small to gain from a second thread.
        torch.set_num_threads(threads or DATA_THREADS)
    chosen = dataclasses.replace(
        RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}
    )
    try:
        pooling_of(chosen)
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    try:
        if name == "seed":
            data = seed_sine(chosen.seed, chosen.split)
        elif name == "default":
            data = simulated_patients(
                chosen.patients,
                chosen.val_patients,
                chosen.test_patients,
                chosen.seconds,
                chosen.seed,
            )
        else:
            options = LoadOptions(_column_map(columns), features, zero_is_missing, registry)
            recordings = [r for p in data_files for r in load_recordings(p, options)]
            rows = train_range or TrainRange(fraction=chosen.split)
            data = split_recordings(recordings, rows, chosen.val_fraction)
            for cut in plan_split(recordings, rows):
                click.echo(cut.describe())
            data, chosen = _data_defaults(data, chosen, overrides)
        result = train_model(
            data,
            chosen,
            out,
            device=resolved_device,
            progress=not quiet,
            echo=click.echo,
            signals=registry,
        )
    except DataError as exc:
        raise DataProblem(str(exc)) from None
    finally:
        torch.set_num_threads(previous_threads)  # a caller in the same process keeps its own
    card = result.card
    if result.seed_style is not None:
        mse, rmse = result.seed_style
        n = int(card.metrics.extra["seed_style_n_test"])
        click.echo(f"Test MSE: {mse:.4f}  (seed-style: {n} test windows, complete batches only)")
        click.echo(f"Test RMSE: {rmse:.4f}")
    if name == "data":
        click.echo(
            f"Held-out report: model and persistence (next = last) RMSE on all "
            f"{card.metrics.overall.n_test} held-out windows; /persist < 1: the model is better"
        )
    else:
        click.echo(f"Metrics on all {card.metrics.overall.n_test} test windows:")
    click.echo(metrics_table(card.metrics))
    click.echo(
        f"train {result.seconds:.1f} s, {len(result.losses)} epochs, final loss "
        f"{result.losses[-1]:.5f}; model {card.model_version[:12]} written to {out}"
    )


def _train_range(
    recipe: str,
    split: float | None,
    first: int | None,
    until: str | None,
    fraction: float | None,
) -> TrainRange | None:
    """The training range the options ask for; None: the recipe's split.

    Raises:
        click.UsageError: More than one of the range options, or one without --data.
    """
    from monitor.training.recordings import TrainRange, parse_time

    given = {
        "--split": split,
        "--train-first": first,
        "--train-until": until,
        "--train-fraction": fraction,
    }
    named = [k for k, v in given.items() if v is not None]
    if len(named) > 1:
        raise click.UsageError(f"{' and '.join(named)} are mutually exclusive: give one")
    ranges = [k for k in named if k != "--split"]
    if ranges and recipe != "data":
        raise click.UsageError(f"{ranges[0]} needs --data FILE")
    if first is not None:
        return TrainRange(first=first)
    if until is not None:
        try:
            return TrainRange(until=parse_time(until))
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--train-until") from None
    if fraction is not None:
        return TrainRange(fraction=fraction)
    return None


def _data_defaults(
    data: SplitData, recipe: Recipe, overrides: dict[str, Any]
) -> tuple[SplitData, Recipe]:
    """Fill the data recipe's window and sizes from the data where the user gave none.

    Prints each choice and why, and adds them to the card's data line.
    """
    from monitor.training.data_defaults import choose_sizes, choose_window, window_limit
    from monitor.training.recipes import RECIPES

    given = {k for k, v in overrides.items() if v is not None}
    notes = []
    if "window" not in given:
        choice = choose_window(
            [s.values for s in data.train],
            data.features,
            sample_period_s=data.sample_period_s,
            fallback=recipe.window,
            limit=window_limit(
                [[s.values for s in part] for part in (data.train, data.val, data.test)]
            ),
        )
        changes: dict[str, Any] = {"window": choice.window}
        if not given & {"pool_recent", "pool_block"}:
            changes.update(pool_recent=choice.pool_recent, pool_block=choice.pool_block)
        recipe = dataclasses.replace(recipe, **changes)
        notes.append(choice.reason)
    if data.held and recipe.mask == 0.0:
        # A vital at its own, slower rate is absent from most served samples: only a model
        # with an observed mask scores the samples without it (on the vitals they carry).
        recipe = dataclasses.replace(recipe, mask=RECIPES["default"].mask)
        rates = ", ".join(f"{v} every {p:g} s" for v, p in data.held.items())
        notes.append(
            f"vitals at their own rates ({rates}; grid {data.sample_period_s:g} s): held "
            f"between their samples in training, and the model takes an observed mask "
            f"(mask {recipe.mask:g}) to score each served sample on the vitals it carries"
        )
    n_windows = sum(max(0, len(s.values) - recipe.window) for s in data.train)
    sizes = choose_sizes(n_windows)
    fields = ("epochs", "batch_size", "train_stride")
    auto = {f: getattr(sizes, f) for f in fields if f not in given}
    if auto:
        recipe = dataclasses.replace(recipe, **auto)
        chosen = ", ".join(f"{f.replace('_', ' ')} {v}" for f, v in auto.items())
        kept = ", ".join(f"--{f.replace('_', '-')}" for f in fields if f in given)
        notes.append(
            f"from {n_windows} training windows: {chosen}" + (f" ({kept} as given)" if kept else "")
        )
    for note in notes:
        click.echo(note)
    if notes:
        data = dataclasses.replace(data, description=f"{data.description}. {'. '.join(notes)}")
    return data, recipe
