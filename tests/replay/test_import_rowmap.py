"""Repeated and out-of-order timestamps: merged/moved counts and the row -> sample map."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from monitor.cli import main
from monitor.replay.importers import Table, merge_rows
from monitor.replay.recording import read_recording

# Data rows 1..7. Rows 3 and 7 repeat the times of rows 1 and 2 (merged); rows 3, 4 and 7 are
# earlier than a row above them (moved); row 5 has no value (skipped); row 6 has no time.
EXPORT = """timestamp,HR,SpO2
2014-07-01T00:00:00Z,60,98
2014-07-01T00:00:02Z,62,
2014-07-01T00:00:00Z,,97
2014-07-01T00:00:01Z,61,96
2014-07-01T00:00:05Z,,
,70,90
2014-07-01T00:00:02Z,63,95
"""
T0 = 1404172800.0


def test_merge_counts_and_row_samples() -> None:
    """merged = rows sharing an earlier row's time; moved = rows earlier than one above."""
    table = Table(
        times=np.array([0.0, 2.0, 0.0, 1.0, 5.0, 2.0]),
        columns={"heart_rate": np.array([60.0, 62.0, np.nan, 61.0, np.nan, 63.0])},
    )
    merged = merge_rows(table)
    assert merged.times.tolist() == [0.0, 1.0, 2.0]
    assert merged.merged == 2
    assert merged.moved == 3  # rows at 0.0, 1.0 and 2.0 after the 2.0 above them
    assert merged.row_sample.tolist() == [0, 2, 0, 1, -1, 2]


def test_merge_with_period_maps_rows_to_their_bin() -> None:
    """With a period, every row of a bin maps to that bin's sample and counts as merged."""
    table = Table(
        times=np.array([0.2, 0.9, 3.1, 1.5]),
        columns={"heart_rate": np.array([60.0, 61.0, 62.0, 63.0])},
    )
    merged = merge_rows(table, period=1.0)
    assert merged.times.tolist() == [0.0, 1.0, 3.0]
    assert merged.row_sample.tolist() == [0, 0, 2, 1]
    assert merged.merged == 1
    assert merged.moved == 1


def test_cli_prints_counts_and_writes_the_row_map(tmp_path: Path) -> None:
    """The summary says what merged and moved; the row map ties each source row to its seq."""
    src = tmp_path / "export.csv"
    src.write_text(EXPORT)
    out = tmp_path / "o.jsonl"
    row_map = tmp_path / "rows.csv"
    args = ["import", str(src), "--out", str(out), "--patient-id", "bed-1", "--row-map"]
    result = CliRunner().invoke(main, [*args, str(row_map)])
    assert result.exit_code == 0, result.output
    assert (
        "2 rows merged (same time or bin), 3 rows out of order (moved), "
        "1 rows skipped (no values), 1 rows without a time"
    ) in result.output
    messages = [json.loads(r.payload) for r in read_recording(out)]
    assert [(m["seq"], m["t"]) for m in messages] == [(0, T0), (1, T0 + 1), (2, T0 + 2)]
    # later rows win per vital: row 3 adds SpO2 97 to row 1's HR 60; row 7 overrides row 2
    assert messages[0]["vitals"] == {"heart_rate": 60.0, "spo2": 97.0}
    assert messages[2]["vitals"] == {"heart_rate": 63.0, "spo2": 95.0}
    with row_map.open() as f:
        rows = list(csv.reader(f))
    assert rows == [
        ["row", "seq", "t"],
        ["1", "0", repr(T0)],
        ["2", "2", repr(T0 + 2)],
        ["3", "0", repr(T0)],
        ["4", "1", repr(T0 + 1)],
        ["5", "", ""],
        ["6", "", ""],
        ["7", "2", repr(T0 + 2)],
    ]
    assert "row map of 7 rows" in result.output


def test_row_map_times_follow_the_start_time_for_seconds(tmp_path: Path) -> None:
    """For a numeric time column the map's t is --start-time + time_s, like the messages."""
    src = tmp_path / "s.csv"
    src.write_text("time_s,HR\n1,61\n0,60\n")
    row_map = tmp_path / "rows.csv"
    args = ["import", str(src), "--out", str(tmp_path / "o.jsonl"), "--patient-id", "p"]
    result = CliRunner().invoke(main, [*args, "--start-time", "500", "--row-map", str(row_map)])
    assert result.exit_code == 0, result.output
    assert "0 rows merged (same time or bin), 1 rows out of order (moved)" in result.output
    assert row_map.read_text().splitlines() == ["row,seq,t", "1,1,501.0", "2,0,500.0"]
