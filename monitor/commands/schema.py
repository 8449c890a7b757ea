"""`monitor schema`: print or export the JSON Schemas of the wire formats."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from monitor.core.alerts import alert_json_schema, open_alerts_json_schema
from monitor.core.schema import json_schema
from simulators.labels import labels_json_schema

SCHEMAS: dict[str, Callable[[], dict[str, Any]]] = {
    "vitals": json_schema,
    "alert": alert_json_schema,
    "alert-state": open_alerts_json_schema,
    "labels": labels_json_schema,
}

#: Schema name -> file name under docs/schemas/.
SCHEMA_FILES: dict[str, str] = {
    "vitals": "vitals-message.schema.json",
    "alert": "alert.schema.json",
    "alert-state": "alert-state.schema.json",
    "labels": "labels.schema.json",
}


def render(name: str) -> str:
    """Return the named schema as the JSON text committed under docs/schemas/."""
    return json.dumps(SCHEMAS[name](), indent=2, sort_keys=True) + "\n"


@click.command("schema")
@click.argument("name", type=click.Choice(sorted(SCHEMAS)), default="vitals")
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the schema here instead of standard output.",
)
def command(name: str, out: Path | None) -> None:
    """Print the JSON Schema of vitals messages (single and block forms), of alert events or
    of a patient's state message (its open alerts)."""
    text = render(name)
    if out is None:
        click.echo(text, nl=False)
    else:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
