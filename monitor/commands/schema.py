"""`monitor schema`: print or export the JSON Schemas of the wire formats."""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.core.schema import json_schema


@click.command("schema")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the vitals message JSON Schema here instead of standard output.",
)
def command(out: Path | None) -> None:
    """Print the JSON Schema of vitals messages (single-sample and block forms)."""
    text = json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
