"""`monitor import`: convert a CSV table or a PhysioNet WFDB record into a recording."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from monitor.errors import DataError


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
    help="auto: csv for *.csv, else a WFDB record path.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="COLUMN=VITAL",
    help="Map a column or signal to a vital (repeat). Default: known names "
    "(HR, SpO2, RESP, ABPSys, ABPDias, hr_bpm, ...).",
)
@click.option("--time-column", default="time_s", show_default=True, help="CSV time column (s).")
@click.option(
    "--start-time",
    type=float,
    default=None,
    help="Unix time of the record's time 0 [default: 1700000000, fixed so imports "
    "are reproducible].",
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
def command(source: Path, **o: Any) -> None:
    """Convert SOURCE (CSV file or WFDB record path) into a recording; see docs/recordings.md."""
    from monitor.replay.importers import (
        DEFAULT_START_TIME,
        read_csv_table,
        read_wfdb_table,
        table_samples,
        write_samples,
    )

    fmt = o["fmt"]
    if fmt == "auto":
        fmt = "csv" if source.suffix.lower() == ".csv" else "wfdb"
    mapping = _mapping(o["maps"]) or None
    try:
        if fmt == "csv":
            table = read_csv_table(source, time_column=o["time_column"], mapping=mapping)
        else:
            table = read_wfdb_table(source, mapping=mapping)
        samples = table_samples(
            table,
            period=o["period"],
            agg=o["agg"],
            zero_is_missing=o["zero_is_missing"],
            require_all=o["require_all"],
        )
        summary = write_samples(
            samples,
            o["out"],
            patient_id=o["patient_id"],
            start_time=DEFAULT_START_TIME if o["start_time"] is None else o["start_time"],
            topic_prefix=o["topic_prefix"],
            source=f"import {fmt} {source.name}",
            rows=len(table.times),
        )
    except (DataError, FileNotFoundError) as exc:
        raise click.ClickException(str(exc)) from None
    except ValidationError as exc:
        raise click.ClickException(f"invalid message: {exc.errors()[0]['msg']}") from None
    click.echo(
        f"{summary.rows} rows -> {summary.samples} samples of {sorted(table.columns)} "
        f"to {o['out']} (t {summary.first_t} .. {summary.last_t})",
        err=True,
    )
