"""Labels: the JSON Lines sink and the exported schema."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from simulators.labels import AnomalyLabel, LabelSink, labels_json_schema, read_labels

DOC = Path(__file__).resolve().parents[2] / "docs" / "schemas" / "labels.schema.json"


def test_sink_writes_one_flushed_line_per_label(tmp_path: Path) -> None:
    """Each label is on disk as soon as it is written, and reads back equal."""
    path = tmp_path / "labels.jsonl"
    a = AnomalyLabel(
        patient_id="p0001",
        vital="heart_rate",
        kind="spike",
        start_t=10.0,
        end_t=10.0,
        start_seq=10,
        end_seq=10,
        magnitude_sigma=5.5,
    )
    b = a.model_copy(update={"vital": None, "kind": "dropout", "magnitude_sigma": 0.0})
    with LabelSink(path) as sink:
        sink.write(a)
        assert path.read_text().count("\n") == 1  # flushed before the sink closes
        sink.write(b)
    assert read_labels(path) == [a, b]
    assert json.loads(path.read_text().splitlines()[1])["vital"] is None


def test_label_rejects_unknown_kind() -> None:
    """A kind outside the documented list is refused."""
    with pytest.raises(ValidationError):
        AnomalyLabel.model_validate(
            {
                "patient_id": "p1",
                "vital": None,
                "kind": "glitch",
                "start_t": 1.0,
                "end_t": 1.0,
                "start_seq": 1,
                "end_seq": 1,
                "magnitude_sigma": 0.0,
            }
        )


def test_docs_schema_is_current() -> None:
    """docs/schemas/labels.schema.json equals the schema exported from the model."""
    assert json.loads(DOC.read_text()) == labels_json_schema()
