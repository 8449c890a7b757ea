"""The worked example of docs/recordings.md (a bedside monitor's CSV export), run as written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.replay.labels import read_labels
from monitor.replay.recording import read_recording

EXPORT = (
    "\ufeffTimestamp,HR,SpO2,RESP\r\n"
    "2024-03-05 14:00:00,82,97,16\r\n"
    "2024-03-05 14:00:01,83,97,16\r\n"
    "2024-03-05 14:00:01,,96,\r\n"
    "2024-03-05 14:00:03,85,95,17\r\n"
    "2024-03-05 14:00:02,84,95,17\r\n"
)
EVENTS = "Timestamp,event\n2024-03-05 14:00:02,SpO2 low\n"
T0 = 1709643600.0  # 2024-03-05 13:00:00 UTC = 14:00:00 in Paris


def test_docs_example_export_to_recording_row_map_and_labels(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every figure the docs quote for the example: times, summary, row map, label."""
    monkeypatch.chdir(tmp_path)  # the docs' command uses relative paths
    Path("export.csv").write_text(EXPORT, encoding="utf-8", newline="")
    Path("bed4_events.csv").write_text(EVENTS)
    args = "import export.csv --out bed4.jsonl.gz --patient-id bed-4 --timezone Europe/Paris "
    args += "--row-map bed4_rows.csv --labels-from bed4_events.csv --labels-out bed4_labels.csv "
    args += "--label-duration 60"
    result = CliRunner().invoke(main, args.split())
    assert result.exit_code == 0, result.output
    assert "5 rows -> 4 samples" in result.output
    assert "1 rows merged (same time or bin), 1 rows out of order (moved)" in result.output
    assert "1 labels to bed4_labels.csv" in result.output
    messages = [json.loads(r.payload) for r in read_recording(Path("bed4.jsonl.gz"))]
    assert [m["t"] for m in messages] == [T0, T0 + 1, T0 + 2, T0 + 3]
    assert messages[1]["vitals"] == {"heart_rate": 83.0, "spo2": 96.0, "resp_rate": 16.0}
    assert Path("bed4_rows.csv").read_text().splitlines() == [
        "row,seq,t",
        f"1,0,{T0}",
        f"2,1,{T0 + 1}",
        f"3,1,{T0 + 1}",
        f"4,3,{T0 + 3}",
        f"5,2,{T0 + 2}",
    ]
    assert Path("bed4_labels.csv").read_text().splitlines()[1] == (
        "bed-4,1709643602.0,1709643662.0,,event,"
    )
    (label,) = read_labels(Path("bed4_labels.csv"))
    assert (label.patient_id, label.start_t, label.end_t) == ("bed-4", T0 + 2, T0 + 62)
