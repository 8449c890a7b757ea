"""Import of CSV tables and WFDB records into recordings of wire-format vitals messages."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from monitor.core.schema import MESSAGE_ADAPTER
from monitor.errors import DataError
from monitor.replay.importers import (
    read_csv_table,
    read_wfdb_table,
    table_samples,
    write_samples,
)
from monitor.replay.recording import read_recording

CSV = """time_s,HR,SpO2,note
0.0,60.0,98.0,a
1.0,0,97.0,b
2.5,,,c
2.0,62.0,0,d
2.0,63.0,96.0,e
7.0,64.0,95.0,f
"""


def _csv(tmp_path: Path) -> Path:
    path = tmp_path / "in.csv"
    path.write_text(CSV)
    return path


def test_csv_rows_keep_real_times_sorted_and_merge_equal_times(tmp_path: Path) -> None:
    """Without a period: sorted by time, equal times merged (later row wins), empty rows skipped."""
    table = read_csv_table(_csv(tmp_path))
    samples = list(table_samples(table, zero_is_missing=True))
    assert samples == [
        (0.0, {"heart_rate": 60.0, "spo2": 98.0}),
        (1.0, {"spo2": 97.0}),
        (2.0, {"heart_rate": 63.0, "spo2": 96.0}),
        (7.0, {"heart_rate": 64.0, "spo2": 95.0}),
    ]


def test_zero_is_kept_unless_flagged_and_require_all_skips_partial_rows(tmp_path: Path) -> None:
    """0 is a value by default; require_all drops a sample missing any mapped vital."""
    table = read_csv_table(_csv(tmp_path), mapping={"HR": "heart_rate", "SpO2": "spo2"})
    kept = list(table_samples(table))
    assert kept[1] == (1.0, {"heart_rate": 0.0, "spo2": 97.0})
    strict = list(table_samples(table, zero_is_missing=True, require_all=True))
    assert [t for t, _ in strict] == [0.0, 2.0, 7.0]


def test_period_bins_take_last_or_mean_and_leave_gaps(tmp_path: Path) -> None:
    """Bins [kP, (k+1)P) stamped kP hold the last (or mean) value; empty bins vanish."""
    table = read_csv_table(_csv(tmp_path), mapping={"HR": "heart_rate"})
    last = list(table_samples(table, period=2.0, zero_is_missing=True))
    assert last == [
        (0.0, {"heart_rate": 60.0}),
        (2.0, {"heart_rate": 63.0}),
        (6.0, {"heart_rate": 64.0}),
    ]
    mean = list(table_samples(table, period=2.0, agg="mean"))
    assert mean[0] == (0.0, {"heart_rate": 30.0})
    assert mean[1] == (2.0, {"heart_rate": 62.5})


def test_recording_holds_wire_messages_with_consecutive_seq(tmp_path: Path) -> None:
    """Messages parse with the wire schema; t = start + offset; seq counts emitted samples."""
    out = tmp_path / "out.jsonl.gz"
    table = read_csv_table(_csv(tmp_path))
    summary = write_samples(
        table_samples(table, zero_is_missing=True), out, patient_id="bed-7", start_time=1000.0
    )
    records = list(read_recording(out))
    assert summary.samples == 4
    assert {r.topic for r in records} == {"vitals/bed-7"}
    messages = [MESSAGE_ADAPTER.validate_json(r.payload) for r in records]
    assert [(m.seq, m.t) for m in messages] == [(0, 1000.0), (1, 1001.0), (2, 1002.0), (3, 1007.0)]
    assert [r.received_at for r in records] == [1000.0, 1001.0, 1002.0, 1007.0]
    assert json.loads(records[1].payload)["vitals"] == {"spo2": 97.0}


def test_bad_mapping_and_bad_cells_are_clear_errors(tmp_path: Path) -> None:
    """Unknown columns, unknown vitals and non-numeric mapped cells raise DataError."""
    path = _csv(tmp_path)
    with pytest.raises(DataError, match="no column named 'BP'"):
        read_csv_table(path, mapping={"BP": "bp_sys"})
    with pytest.raises(DataError, match="unknown vital 'pulse'"):
        read_csv_table(path, mapping={"HR": "pulse"})
    with pytest.raises(DataError, match=r"in\.csv:2.*not a number"):
        read_csv_table(path, mapping={"note": "heart_rate"})


# wfdb calls pandas with deprecated arguments; that is wfdb's warning, not ours.
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_wfdb_record_written_by_wfdb_is_imported_and_averaged(tmp_path: Path) -> None:
    """A 4 Hz WFDB record (HR, SpO2) imports with period 1 s as per-second means."""
    import wfdb

    hr = np.repeat([60.0, 62.0, 64.0], 4) + np.tile([0.0, 1.0, 2.0, 3.0], 3)
    spo2 = np.full(12, 97.0)
    wfdb.wrsamp(
        "rec",
        fs=4,
        units=["bpm", "%"],
        sig_name=["HR", "SpO2"],
        p_signal=np.column_stack([hr, spo2]),
        fmt=["16", "16"],
        adc_gain=[100.0, 100.0],
        baseline=[0, 0],
        write_dir=str(tmp_path),
    )
    table = read_wfdb_table(tmp_path / "rec")
    assert sorted(table.columns) == ["heart_rate", "spo2"]
    samples = list(table_samples(table, period=1.0, agg="mean"))
    assert [t for t, _ in samples] == [0.0, 1.0, 2.0]
    assert [round(v["heart_rate"], 6) for _, v in samples] == [61.5, 63.5, 65.5]
    assert [round(v["spo2"], 6) for _, v in samples] == [97.0, 97.0, 97.0]
