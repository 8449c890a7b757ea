"""CSV recordings: columns, missing values, gaps and the chronological split."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.errors import DataError
from monitor.training.data import cut_windows
from monitor.training.recordings import LoadOptions, load_recording, segments, split_recordings


def _csv(path: Path, rows: list[str]) -> Path:
    path.write_text("\n".join(["time_s,HR,spo2", *rows]) + "\n")
    return path


def test_column_mapping_and_zero_as_missing(tmp_path: Path) -> None:
    """HR maps to heart_rate via --column; 0 and empty cells become NaN."""
    f = _csv(tmp_path / "r.csv", ["0,60,98", "60,0,97", "120,,96"])
    rec = load_recording(f, LoadOptions({"HR": "heart_rate"}, zero_is_missing=True))
    assert rec.features == ("heart_rate", "spo2")
    assert rec.values[0].tolist() == [60.0, 98.0]
    assert np.isnan(rec.values[1, 0])
    assert np.isnan(rec.values[2, 0])


def test_feature_selection(tmp_path: Path) -> None:
    """--feature keeps only the named vitals, in the given order."""
    f = _csv(tmp_path / "r.csv", ["0,60,98", "60,61,97"])
    rec = load_recording(f, LoadOptions({"HR": "heart_rate"}, features=("spo2",)))
    assert rec.features == ("spo2",)
    assert rec.values[:, 0].tolist() == [98.0, 97.0]


def test_unknown_feature_is_a_data_error(tmp_path: Path) -> None:
    """Asking for a vital the file lacks names it."""
    f = _csv(tmp_path / "r.csv", ["0,60,98"])
    with pytest.raises(DataError, match="resp_rate"):
        load_recording(f, LoadOptions(features=("resp_rate",)))


def test_unknown_suffix_is_a_data_error(tmp_path: Path) -> None:
    """A file type without a loader is refused with the known ones."""
    f = tmp_path / "r.parquet"
    f.write_text("x")
    with pytest.raises(DataError, match=r"\.csv"):
        load_recording(f, LoadOptions())


def test_gaps_and_time_jumps_split_segments() -> None:
    """A missing value and a skipped time stamp each end a segment; windows stay inside."""
    times = np.array([0, 1, 2, 3, 4, 5, 6, 9, 10, 11, 12], dtype=float)
    values = np.arange(11, dtype=float).reshape(-1, 1)
    values[3] = np.nan
    segs = segments(values, times, 1.0)
    assert [s.values[:, 0].tolist() for s in segs] == [[0, 1, 2], [4, 5, 6], [7, 8, 9, 10]]
    w = cut_windows(segs, 2, 1)
    # Only windows wholly inside a segment: none starts before and ends after a gap.
    assert w.x[:, :, 0].tolist() == [[0, 1], [4, 5], [7, 8], [8, 9]]
    assert w.y[:, 0].tolist() == [2, 6, 9, 10]


def test_chronological_split(tmp_path: Path) -> None:
    """split=0.7, val 0.2 of 20 rows: rows 0-10 train, 11-13 validate, 14-19 test."""
    rows = [f"{60 * i},{60 + i},97" for i in range(20)]
    rec = load_recording(_csv(tmp_path / "r.csv", rows), LoadOptions({"HR": "heart_rate"}))
    data = split_recordings([rec], split=0.7, val_fraction=0.2)
    assert data.sample_period_s == 60.0
    assert [s.values[:, 0].tolist() for s in data.train] == [[60 + i for i in range(11)]]
    assert [s.values[:, 0].tolist() for s in data.val] == [[71, 72, 73]]
    assert [s.values[:, 0].tolist() for s in data.test] == [[74 + i for i in range(6)]]
    # Every segment names its recording: serving's one patient, calibrated as one stream.
    assert {s.stream for s in (*data.train, *data.val, *data.test)} == {f"0:{rec.source}"}


def test_a_non_finite_cell_is_missing(tmp_path: Path) -> None:
    """`inf` and `nan` cells (a float formatter's output for a failed reading) are missing
    values, as empty cells are: never numbers a model learns from."""
    f = _csv(tmp_path / "r.csv", ["0,60,inf", "60,nan,97", "120,-inf,96"])
    rec = load_recording(f, LoadOptions({"HR": "heart_rate"}))
    assert np.isnan(rec.values).tolist() == [[False, True], [True, False], [True, False]]
