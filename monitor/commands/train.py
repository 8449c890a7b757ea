"""`monitor train`: train a MedicalLSTM and write a model directory."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from monitor.commands.signals import registry_of, signal_option
from monitor.errors import DataError


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
    type=click.Choice(["none", "window_mean"]),
    default=None,
    help="Subtract each window's own mean before normalising (the recipe decides by default).",
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
    device: str,
    quiet: bool,
    **overrides: Any,
) -> None:
    """Train a MedicalLSTM and write OUT/model.safetensors, card.json and two plots."""
    # Imported here: `monitor --help` must not pay for torch.
    from monitor.model.predictor import resolve_device
    from monitor.training.evaluation import metrics_table
    from monitor.training.pipeline import pooling_of, train_model
    from monitor.training.recipes import RECIPES
    from monitor.training.recordings import LoadOptions, load_recordings, split_recordings
    from monitor.training.simulated import seed_sine, simulated_patients

    registry = registry_of(signals)
    unknown = [f for f in features if f not in registry]
    if unknown:
        raise click.BadParameter(
            f"unknown vital {unknown[0]!r}; {registry.known_line()}", param_hint="--feature"
        )
    name = recipe or ("data" if data_files else "default")
    if (name == "data") != bool(data_files):
        raise click.UsageError("--data FILE is required with --recipe data, and only with it")
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
            data = split_recordings(recordings, chosen.split, chosen.val_fraction)
        result = train_model(
            data,
            chosen,
            out,
            device=resolve_device(device),
            progress=not quiet,
            echo=click.echo,
            signals=registry,
        )
    except DataError as exc:
        raise click.ClickException(str(exc)) from exc
    card = result.card
    if result.seed_style is not None:
        mse, rmse = result.seed_style
        n = int(card.metrics.extra["seed_style_n_test"])
        click.echo(f"Test MSE: {mse:.4f}  (seed-style: {n} test windows, complete batches only)")
        click.echo(f"Test RMSE: {rmse:.4f}")
    click.echo(f"Metrics on all {card.metrics.overall.n_test} test windows:")
    click.echo(metrics_table(card.metrics))
    click.echo(
        f"train {result.seconds:.1f} s, {len(result.losses)} epochs, final loss "
        f"{result.losses[-1]:.5f}; model {card.model_version[:12]} written to {out}"
    )
