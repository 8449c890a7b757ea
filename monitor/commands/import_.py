"""`monitor import`: convert a CSV table or a WFDB record into a recording (and labels)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from pydantic import ValidationError

from monitor.commands.signals import registry_of, signal_option
from monitor.errors import DataError

if TYPE_CHECKING:
    from monitor.core.types import FloatArray
    from monitor.core.vitals import Registry


class ImportDataError(click.ClickException):
    """Bad input data: one line naming the file (and line), exit code 2."""

    exit_code = 2


def implausible_lines(
    names: list[str], values: FloatArray, registry: Registry, zero_is_missing: bool
) -> list[str]:
    """One WARNING line per vital with values outside its plausible bounds.

    Serving treats such a value as an `artifact` (a technical alert; a model with an
    observed mask drops the vital and scores the rest of the sample, any other refuses the
    sample), so an import that writes many of them makes a recording full of technical
    alerts. Zeros among them get a hint: in ICU numerics (MIMIC's) 0 means no value.

    Args:
        names: The imported vitals, in `values`' column order.
        values: Samples x vitals, NaN where absent (`Merged.values`).
        registry: The signals known to the import (bounds and units).
        zero_is_missing: Whether zeros were already dropped.
    """
    import numpy as np

    lines = []
    for j, name in enumerate(names):
        column = values[:, j]
        seen = column[np.isfinite(column)]
        spec = registry[name]
        bad = seen[(seen < spec.low) | (seen > spec.high)]
        if not bad.size:
            continue
        line = (
            f"WARNING: {name}: {bad.size:,} of {seen.size:,} values outside its plausible "
            f"range [{spec.low:g}, {spec.high:g}] {spec.unit}; serving takes each for an "
            "artifact (a technical alert) and scores none of them"
        )
        zeros = int(np.count_nonzero(bad == 0))
        if zeros and not zero_is_missing:
            line += (
                f"; {zeros:,} of them are 0: if 0 means no value here, import with "
                "--zero-is-missing"
            )
        lines.append(line)
    return lines


def _mapping(pairs: tuple[str, ...]) -> dict[str, str]:
    out: dict[str, str] = {}
    for pair in pairs:
        column, sep, vital = pair.partition("=")
        if not sep or not column or not vital:
            raise click.BadParameter(f"expected COLUMN=vital, got {pair!r}", param_hint="--map")
        out[column] = vital
    return out


@click.command("import")
@click.argument("source", type=click.Path(exists=False, path_type=Path))
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recording to write (gzip when it ends in .gz).",
)
@click.option("--patient-id", required=True, help="Patient id for the messages' topic and body.")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["auto", "csv", "wfdb"]),
    default="auto",
    show_default=True,
    help="auto: csv for *.csv and *.csv.gz, else a WFDB record path.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=VITAL",
    help="Map a column or signal to a vital or a --signal (repeat). Default: known names "
    "(HR, SpO2, RESP, ABPSys, ABPDias, hr_bpm, ...) and columns named as a --signal.",
)
@signal_option
@click.option(
    "--time-column",
    default=None,
    help="CSV time column [default: the first of time_s, timestamp, datetime, date_time, "
    "time, date, charttime].",
)
@click.option(
    "--time-format",
    default=None,
    help="strptime format of date-time cells, e.g. '%d/%m/%Y %H:%M:%S' [default: seconds, "
    "ISO 8601 or a common layout, detected].",
)
@click.option(
    "--timezone",
    default="UTC",
    show_default=True,
    help="IANA time zone of date-times without an offset.",
)
@click.option(
    "--encoding",
    default="utf-8",
    show_default=True,
    help="CSV text encoding (a UTF-8 byte order mark is dropped).",
)
@click.option(
    "--start-time",
    type=float,
    default=None,
    help="Unix time of a numeric time column's 0 [default: 1700000000, fixed so imports "
    "are reproducible]. Date-times are real times and take none.",
)
@click.option(
    "--period",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Resample onto a grid of this many seconds (default: keep real times).",
)
@click.option(
    "--agg",
    type=click.Choice(["last", "mean"]),
    default="last",
    show_default=True,
    help="With --period: value of a bin.",
)
@click.option("--zero-is-missing", is_flag=True, help="Treat 0 as no value (ICU numerics).")
@click.option(
    "--require-all",
    is_flag=True,
    help="Skip samples missing any mapped vital (default: need at least one).",
)
@click.option("--topic-prefix", default="vitals", show_default=True)
@click.option(
    "--row-map",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write row,seq,t: each source data row -> the sample it went into (empty if none).",
)
@click.option(
    "--labels-from",
    type=click.Path(path_type=Path),
    default=None,
    help="Annotations to convert into labels: a CSV (symbol, is_anomalous_beat or event "
    "column) or a WFDB record path (with --annotator).",
)
@click.option(
    "--labels-out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Label CSV to write for monitor evaluate (with --labels-from).",
)
@click.option("--annotator", default="atr", show_default=True, help="WFDB annotation extension.")
@click.option(
    "--labels-time-column",
    default=None,
    help="Time column of an annotation CSV [default: as for --time-column].",
)
@click.option(
    "--anomalous-symbols",
    default=None,
    metavar="A,V,...",
    help="Beat symbols that make a label [default: MIT-BIH abnormal beats, all beat "
    "symbols but N, L, R, e, j].",
)
@click.option(
    "--label-duration",
    type=click.FloatRange(min=0),
    default=0.0,
    show_default=True,
    help="Seconds a label lasts after its annotation.",
)
@click.option(
    "--labels-vital",
    default=None,
    help="Vital the labels concern [default: any vital].",
)
def command(source: Path, **o: Any) -> None:
    """Convert SOURCE (CSV file or WFDB record path) into a recording; see docs/recordings.md."""
    registry = o["registry"] = registry_of(o.pop("signals"))
    if (o["labels_from"] is None) != (o["labels_out"] is None):
        raise click.UsageError("--labels-from and --labels-out go together")
    if o["labels_vital"] is not None and o["labels_vital"] not in registry:
        raise click.BadParameter(
            f"unknown vital {o['labels_vital']!r}; {registry.known_line()}",
            param_hint="--labels-vital",
        )
    fmt = o["fmt"]
    if fmt == "auto":
        fmt = "csv" if source.name.lower().endswith((".csv", ".csv.gz")) else "wfdb"
    try:
        _import(source, fmt, o)
    except (DataError, OSError) as exc:
        raise ImportDataError(_one_line(exc)) from None
    except ValidationError as exc:
        raise ImportDataError(f"invalid message: {exc.errors()[0]['msg']}") from None


def _one_line(exc: Exception) -> str:
    if isinstance(exc, OSError) and exc.filename is not None:
        return f"{exc.filename}: {exc.strerror or exc}"
    return " ".join(str(exc).split())


def _import(source: Path, fmt: str, o: dict[str, Any]) -> None:
    from monitor.replay.importers import (
        DEFAULT_START_TIME,
        merge_rows,
        read_csv_table,
        read_wfdb_table,
        write_row_map,
        write_samples,
    )
    from monitor.replay.times import TimeOptions

    mapping = _mapping(o["maps"]) or None
    times = TimeOptions(o["time_format"], o["timezone"])
    times.zone()  # a misspelt zone is an error even when the times turn out to be seconds
    if fmt == "csv":
        table = read_csv_table(
            source,
            time_column=o["time_column"],
            mapping=mapping,
            times=times,
            encoding=o["encoding"],
            signals=o["registry"],
        )
    else:
        table = read_wfdb_table(source, mapping=mapping, signals=o["registry"])
    if table.absolute and o["start_time"] is not None:
        raise DataError(
            str(source), f"times are date-times ({table.layout}); --start-time is for seconds"
        )
    if table.absolute:
        start = 0.0  # the times are unix seconds already
    else:
        start = DEFAULT_START_TIME if o["start_time"] is None else o["start_time"]
    merged = merge_rows(
        table,
        period=o["period"],
        agg=o["agg"],
        zero_is_missing=o["zero_is_missing"],
        require_all=o["require_all"],
    )
    if not len(merged.times):
        raise DataError(
            str(source),
            f"no samples: {table.source_rows} data rows, {len(table.times)} with a time, "
            "none with a value of a mapped vital; nothing written",
        )
    labels = _labels(o, table.absolute, start) if o["labels_from"] is not None else None
    summary = write_samples(
        merged.samples(),
        o["out"],
        patient_id=o["patient_id"],
        start_time=start,
        topic_prefix=o["topic_prefix"],
        source=f"import {fmt} {source.name}",
        rows=table.source_rows,
    )
    skipped = int((merged.row_sample < 0).sum())
    untimed = table.source_rows - len(table.times)
    click.echo(
        f"{summary.rows} rows -> {summary.samples} samples of {sorted(table.columns)} "
        f"to {o['out']} (t {summary.first_t} .. {summary.last_t}, times: {table.layout})",
        err=True,
    )
    click.echo(
        f"{merged.merged} rows merged (same time or bin), {merged.moved} rows out of order "
        f"(moved), {skipped} rows skipped (no values), {untimed} rows without a time",
        err=True,
    )
    for line in table.notes:
        click.echo(line, err=True)
    for line in implausible_lines(merged.names, merged.values, o["registry"], o["zero_is_missing"]):
        click.echo(line, err=True)
    if o["row_map"] is not None:
        n = write_row_map(o["row_map"], table, merged, start)
        click.echo(f"row map of {n} rows to {o['row_map']}", err=True)
    if labels is not None:
        from monitor.replay.annotations import write_labels_csv

        points_rule, items = labels
        n = write_labels_csv(o["labels_out"], items)
        click.echo(f"{n} labels to {o['labels_out']} ({points_rule})", err=True)


def _labels(o: dict[str, Any], absolute: bool, start: float) -> tuple[str, list[Any]]:
    """Read the annotations into labels on the recording's clock, before anything is written."""
    from monitor.replay.annotations import (
        parse_symbols,
        points_to_labels,
        read_csv_points,
        read_wfdb_points,
    )
    from monitor.replay.times import TimeOptions

    path: Path = o["labels_from"]
    symbols = None if o["anomalous_symbols"] is None else parse_symbols(o["anomalous_symbols"])
    if path.name.lower().endswith((".csv", ".csv.gz")):
        points = read_csv_points(
            path,
            time_column=o["labels_time_column"],
            times=TimeOptions(o["time_format"], o["timezone"]),
            symbols=symbols,
            encoding=o["encoding"],
        )
    else:
        points = read_wfdb_points(path, annotator=o["annotator"], symbols=symbols)
    if len(points.times) and points.absolute != absolute:
        what = ("date-times", "seconds") if points.absolute else ("seconds", "date-times")
        raise DataError(
            str(path), f"annotation times are {what[0]} but the recording's are {what[1]}"
        )
    labels = points_to_labels(
        points,
        patient_id=o["patient_id"],
        start_time=start,
        duration=o["label_duration"],
        vital=o["labels_vital"],
    )
    return f"from {points.total} annotations, chosen by {points.rule}", labels
