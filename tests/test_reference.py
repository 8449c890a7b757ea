"""The generated reference documents in docs/ are in step with the code."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.commands.schema import SCHEMA_FILES, render
from monitor.reference import render_all

DOCS = Path(__file__).resolve().parents[1] / "docs"


@pytest.mark.parametrize("name", sorted(render_all()))
def test_reference_document_is_current(name: str) -> None:
    """docs/<name> equals what `monitor docs` generates (run it after changing the code)."""
    assert (DOCS / name).read_text() == render_all()[name]


@pytest.mark.parametrize("name", sorted(SCHEMA_FILES))
def test_json_schema_is_current(name: str) -> None:
    """docs/schemas/<file> equals the schema exported from the pydantic models."""
    assert (DOCS / "schemas" / SCHEMA_FILES[name]).read_text() == render(name)


def test_every_setting_and_metric_is_documented() -> None:
    """Each section's settings and each metric name appear in the generated documents."""
    from prometheus_client import CollectorRegistry

    from monitor.service.metrics import Metrics
    from monitor.settings import Settings

    settings_doc = render_all()["settings.md"]
    for section, field in Settings.model_fields.items():
        sub_fields = getattr(field.annotation, "model_fields", {})
        for sub in sub_fields:
            assert f"`{section}.{sub}`" in settings_doc
    metrics_doc = render_all()["metrics.md"]
    metrics = Metrics.create(CollectorRegistry())
    for family in metrics.registry.collect():
        assert f"`{family.name}" in metrics_doc
