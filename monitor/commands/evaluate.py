"""`monitor evaluate`: replay a recording offline and score its alerts against labels."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from monitor.errors import MonitorError

if TYPE_CHECKING:
    from monitor.core.codec import CodecLimits
    from monitor.evaluation.scoring import Evaluation, ScoringConfig
    from monitor.replay.labels import Label


def _floors(pairs: tuple[str, ...]) -> dict[str, float]:
    out: dict[str, float] = {}
    for pair in pairs:
        vital, sep, value = pair.partition("=")
        try:
            out[vital] = float(value)
        except ValueError:
            sep = ""
        if not sep or not vital:
            raise click.BadParameter(
                f"expected VITAL=SIGMA, got {pair!r}", param_hint="--noise-floor"
            )
    return out


def _baselines(
    o: dict[str, Any],
    features: list[str],
    labels: Sequence[Label],
    config: ScoringConfig,
    limits: CodecLimits,
) -> dict[str, Evaluation]:
    """Score the baselines on the recording's samples (the same the product's codec accepts:
    `limits` is what the replay's pipeline applied)."""
    from monitor.evaluation.baselines import BaselineRule
    from monitor.evaluation.runner import score_baselines

    rule = BaselineRule(window=o["baseline_window"], threshold=o["baseline_threshold"])
    try:
        return score_baselines(
            o["recording"], features, labels, config=config, rule=rule, limits=limits
        )
    except MonitorError as exc:
        raise click.ClickException(str(exc)) from None


@click.command("evaluate")
@click.option(
    "--recording", required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path)
)
@click.option(
    "--labels",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Simulator labels (JSON Lines) or a CSV of patient,start,end[,vital] windows.",
)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model directory; default: the shipped model (as `monitor run`).",
)
@click.option(
    "--report",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the JSON report here.",
)
@click.option(
    "--onsets",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write every onset of the product and the baselines here (CSV: detector, patient_id, "
    "vital, t, seq, kind, rule, detects).",
)
@click.option(
    "--plots",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Write PNG plots of a few patients into this folder.",
)
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file, as for `monitor run` (ingest, window, batch, detector sections).",
)
@click.option("--plot-patients", type=click.IntRange(min=1), default=4, show_default=True)
@click.option(
    "--tolerance-samples",
    type=click.IntRange(min=0),
    default=3,
    show_default=True,
    help="An alert may start this many samples after a label ends.",
)
@click.option(
    "--sample-period",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Seconds per sample (turns the tolerance into seconds).",
)
@click.option(
    "--tolerance",
    "tolerance_s",
    type=click.FloatRange(min=0),
    default=None,
    help="An alert may start this many seconds after a label ends (overrides "
    "--tolerance-samples x --sample-period; for irregular series such as one sample per beat).",
)
@click.option(
    "--tolerance-before",
    "tolerance_before_s",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="An alert may start this many seconds before a label starts (annotations marked by "
    "hand after the event began; docs/evaluation.md). Applies to the baselines alike.",
)
@click.option(
    "--baselines/--no-baselines",
    default=True,
    show_default=True,
    help="Also score the rolling z-score and persistence baselines on the same samples.",
)
@click.option(
    "--baseline-window",
    type=click.IntRange(min=2),
    default=100,
    show_default=True,
    help="Past samples of the baselines' mean and standard deviation.",
)
@click.option(
    "--baseline-threshold",
    type=click.FloatRange(min=0, min_open=True),
    default=4.0,
    show_default=True,
    help="The baselines alert when |z| is above this on 2 of 3 samples.",
)
@click.option(
    "--noise-floor",
    "floors",
    multiple=True,
    metavar="VITAL=SIGMA",
    help="Known noise sigma of a vital, for the RMSE table (repeat).",
)
def command(**o: Any) -> None:
    """Replay RECORDING offline through the daemon's pipeline and score alerts against LABELS."""
    from monitor.evaluation.report import (
        format_comparison,
        format_table,
        plot_patients,
        write_json,
        write_onsets,
    )
    from monitor.evaluation.runner import score_result
    from monitor.evaluation.scoring import ScoringConfig
    from monitor.model.store import default_model_path
    from monitor.replay.labels import read_labels
    from monitor.replay.offline import run_offline
    from monitor.replay.outcomes import format_gains, format_outcomes, unscored_warning
    from monitor.settings import load_settings

    config = ScoringConfig(
        tolerance_samples=o["tolerance_samples"],
        sample_period_s=o["sample_period"],
        tolerance_seconds=o["tolerance_s"],
        tolerance_before_s=o["tolerance_before_s"],
    )
    try:
        settings = load_settings(o["config_file"])
        labels = read_labels(o["labels"])
        result = run_offline(
            o["recording"],
            o["model"] or default_model_path(),
            settings=settings,
            collect_predictions=True,
        )
    except MonitorError as exc:
        # One line, exit code 2: a bad recording, labels, model or settings file.
        click.echo(f"monitor evaluate: {exc}", err=True)
        sys.exit(2)
    scored = score_result(result, labels, config=config, noise_floor=_floors(o["floors"]))
    # What became of every sample: the same counts in the text and in the JSON report.
    scored.extra["outcomes"] = dict(result.outcomes)
    click.echo(format_table(scored.evaluation))
    baselines: dict[str, Evaluation] = {}
    if o["baselines"]:
        baselines = _baselines(o, scored.features, labels, config, result.limits)
        click.echo("\n" + format_comparison(scored.evaluation, baselines))
        scored.extra["baselines"] = {k: b.events_json() for k, b in baselines.items()}
    rate = scored.extra["samples_per_second"]
    click.echo(
        f"\n{scored.extra['samples_scored']} samples scored in "
        f"{scored.extra['elapsed_s']:.2f} s" + (f" ({rate:,.0f}/s)" if rate else "")
    )
    click.echo(format_gains(result.gains, result.rhythm))
    click.echo(format_outcomes(result.outcomes))
    warning = unscored_warning(result.outcomes)
    if warning is not None:
        click.echo(warning, err=True)
    if o["report"] is not None:
        write_json(scored.evaluation, o["report"], extra=scored.extra)
        click.echo(f"report: {o['report']}")
    if o["onsets"] is not None:
        write_onsets(o["onsets"], {"product": scored.evaluation, **baselines})
        click.echo(f"onsets: {o['onsets']}")
    if o["plots"] is not None:
        files = plot_patients(
            o["plots"],
            scored.series,
            scored.features,
            scored.alerts,
            labels,
            count=o["plot_patients"],
        )
        click.echo(f"plots: {', '.join(str(f) for f in files)}")
