"""`monitor docs`: regenerate the reference documents (settings, metrics, JSON Schemas)."""

from __future__ import annotations

from pathlib import Path

import click


@click.command("docs")
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("docs"),
    show_default=True,
    help="The docs folder to write into.",
)
def command(out: Path) -> None:
    """Write docs/settings.md, docs/metrics.md and docs/schemas/*.json from the code."""
    from monitor.commands.schema import SCHEMA_FILES, render
    from monitor.reference import render_all

    out.mkdir(parents=True, exist_ok=True)
    for name, text in render_all().items():
        (out / name).write_text(text)
    for name, file in SCHEMA_FILES.items():
        (out / "schemas").mkdir(exist_ok=True)
        (out / "schemas" / file).write_text(render(name))
    click.echo(f"wrote {out}/settings.md, {out}/metrics.md and {len(SCHEMA_FILES)} schemas")
