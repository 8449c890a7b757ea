"""The alert contract: JSON payload shape, technical alerts, and the exported schema file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from monitor.core.alerts import AlertEvent, alert_json_schema

SCHEMA_FILE = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "alert.schema.json"


def test_to_json_is_compact_and_round_trips() -> None:
    """to_json gives compact JSON bytes with every field, parseable back into the same event."""
    event = AlertEvent(
        kind="physiological",
        patient_id="p1",
        vital="spo2",
        state="raised",
        severity="medium",
        t=10.5,
        seq=3,
        actual=88.0,
        predicted=97.0,
        z=-6.5,
        threshold=4.0,
        model_version="m1",
    )
    raw = event.to_json()
    assert json.loads(raw) == {
        "v": 1,
        "id": event.id,
        "kind": "physiological",
        "patient_id": "p1",
        "vital": "spo2",
        "state": "raised",
        "severity": "medium",
        "t": 10.5,
        "seq": 3,
        "actual": 88.0,
        "predicted": 97.0,
        "z": -6.5,
        "threshold": 4.0,
        "model_version": "m1",
        "reason": None,
    }
    assert AlertEvent.model_validate_json(raw) == event


@pytest.mark.parametrize(
    ("reason", "severity"),
    [
        ("signal_lost", "high"),
        ("monitoring_degraded", "high"),
        ("artifact", "low"),
        ("other", "medium"),
    ],
)
def test_technical_alert_defaults(reason: str, severity: str) -> None:
    """technical() fills kind, reason and the reason's default severity; no residual fields."""
    event = AlertEvent.technical("p1", reason, "raised", t=5.0, model_version="m1")
    assert (event.kind, event.reason, event.severity, event.vital, event.seq) == (
        "technical",
        reason,
        severity,
        None,
        None,
    )
    assert (event.actual, event.predicted, event.z, event.threshold) == (None, None, None, None)


@pytest.mark.parametrize("bad_id", ["a/b", "$SYS", "p\n", "x" * 65])
def test_alert_refuses_unsafe_patient_ids(bad_id: str) -> None:
    """An alert can never be built for an id that is unsafe in a topic."""
    with pytest.raises(ValidationError, match="patient_id"):
        AlertEvent.technical(bad_id, "signal_lost", "raised", t=1.0, model_version="m")


def test_exported_schema_file_is_current() -> None:
    """docs/schemas/alert.schema.json equals the schema exported from AlertEvent."""
    assert json.loads(SCHEMA_FILE.read_text()) == alert_json_schema()
