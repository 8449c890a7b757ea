"""Labels from the simulator's JSONL and from a CSV of windows become the same type."""

from __future__ import annotations

from pathlib import Path

import pytest

from monitor.errors import DataError
from monitor.replay.labels import Label, read_labels


def test_simulator_jsonl_labels(tmp_path: Path) -> None:
    """Every field is read; a null vital means the whole patient; dropout is technical."""
    path = tmp_path / "labels.jsonl"
    path.write_text(
        '{"patient_id":"p1","vital":"spo2","kind":"drift","start_t":10.0,"end_t":20.0,'
        '"start_seq":10,"end_seq":20,"magnitude_sigma":5.0}\n\n'
        '{"patient_id":"p2","vital":null,"kind":"dropout","start_t":3,"end_t":4,'
        '"start_seq":3,"end_seq":4,"magnitude_sigma":null}\n'
    )
    labels = read_labels(path)
    assert labels == [
        Label("p1", "spo2", "drift", 10.0, 20.0, 10, 20, 5.0),
        Label("p2", None, "dropout", 3.0, 4.0, 3, 4, None),
    ]
    assert [lab.technical for lab in labels] == [False, True]


def test_csv_windows_with_and_without_vital(tmp_path: Path) -> None:
    """CSV rows (patient, start, end[, vital]) become labels without sequence numbers."""
    path = tmp_path / "w.csv"
    path.write_text("patient,start,end,vital\nbed1,100,160,heart_rate\nbed2,5.5,6,\n")
    assert read_labels(path) == [
        Label("bed1", "heart_rate", "anomaly", 100.0, 160.0),
        Label("bed2", None, "anomaly", 5.5, 6.0),
    ]


def test_malformed_label_names_its_line(tmp_path: Path) -> None:
    """A label without start_t raises DataError pointing at its line."""
    path = tmp_path / "labels.jsonl"
    path.write_text('{"patient_id":"p1","vital":null,"kind":"spike","end_t":1}\n')
    with pytest.raises(DataError, match=r"labels\.jsonl:1"):
        read_labels(path)
