"""Training ranges of `monitor train --data`: first N samples, until a time, first fraction."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from monitor.errors import DataError
from monitor.training.recordings import (
    LoadOptions,
    Recording,
    TrainRange,
    format_time,
    load_recording,
    parse_time,
    plan_split,
    split_recordings,
)


def _recording(n: int, t0: float = 1_700_000_000.0, period: float = 1.0) -> Recording:
    times = t0 + period * np.arange(n, dtype=np.float64)
    values = (60.0 + np.arange(n, dtype=np.float64)).reshape(-1, 1)
    return Recording("/data/hr.jsonl#p1", ("heart_rate",), times, values)


def test_first_n_samples_train_and_the_rest_is_held_out() -> None:
    """--train-first 30 of 100: rows 0-29 train (last 20% validate), rows 30-99 held out."""
    data = split_recordings([_recording(100)], TrainRange(first=30), val_fraction=0.2)
    assert [s.values[:, 0].tolist() for s in data.train] == [[60.0 + i for i in range(24)]]
    assert [s.values[:, 0].tolist() for s in data.val] == [[60.0 + i for i in range(24, 30)]]
    assert [s.values[:, 0].tolist() for s in data.test] == [[60.0 + i for i in range(30, 100)]]
    assert "first 30 samples train" in data.description
    assert "training rows 0..29" in data.description
    assert "held out rows 30..99" in data.description


def test_until_a_unix_time_or_an_iso_date_time_cuts_at_the_same_row() -> None:
    """Samples before TIME train; TIME as unix seconds and as ISO 8601 UTC agree."""
    rec = _recording(100)  # t = 1700000000 + i, 1700000000 is 2023-11-14T22:13:20Z
    by_number = plan_split([rec], TrainRange(until=parse_time("1700000040")))
    by_iso = plan_split([rec], TrainRange(until=parse_time("2023-11-14T22:14:00Z")))
    naive = plan_split([rec], TrainRange(until=parse_time("2023-11-14T22:14:00")))
    assert by_number[0].train == by_iso[0].train == naive[0].train == 40
    line = by_iso[0].describe()
    assert "training rows 0..39" in line
    assert "2023-11-14T22:13:20.000Z" in line
    assert "40 samples" in line
    assert "held out rows 40..99" in line
    assert "60 samples" in line


def test_until_a_time_between_samples_keeps_the_earlier_ones() -> None:
    """A cut between two sample times trains every sample before it."""
    rec = _recording(20, t0=0.0, period=60.0)
    assert plan_split([rec], TrainRange(until=150.0))[0].train == 3  # t = 0, 60, 120


def test_fraction_is_the_first_share_of_the_samples() -> None:
    """--train-fraction 0.15 of 200 samples: 30 train, 170 held out."""
    cut = plan_split([_recording(200)], TrainRange(fraction=0.15))[0]
    assert (cut.train, cut.held_out) == (30, 170)


def test_a_range_leaving_no_held_out_row_is_a_data_error() -> None:
    """--train-first beyond the recording names the recording and its length."""
    with pytest.raises(DataError, match=r"leaves no held-out row \(100 samples"):
        plan_split([_recording(100)], TrainRange(first=100))


def test_a_range_selecting_no_training_row_is_a_data_error() -> None:
    """--train-until before the first sample names the first time."""
    with pytest.raises(DataError, match="selects no training row"):
        plan_split([_recording(10)], TrainRange(until=5.0))


def test_parse_time_refuses_garbage() -> None:
    """Neither a number nor ISO 8601: a ValueError saying what is expected."""
    with pytest.raises(ValueError, match="unix seconds or an ISO 8601"):
        parse_time("yesterday")
    with pytest.raises(ValueError, match="finite"):
        parse_time("nan")


def test_range_needs_exactly_one_bound() -> None:
    """A TrainRange with two bounds or none is a programming error."""
    with pytest.raises(ValueError, match="exactly one"):
        TrainRange(first=3, fraction=0.5)
    with pytest.raises(ValueError, match="exactly one"):
        TrainRange()


def test_format_time_shows_unix_times_as_utc_too() -> None:
    """Record-relative seconds stay numbers; unix seconds get their UTC date-time."""
    assert format_time(120.0) == "120"
    assert format_time(1_700_000_000.0) == "1700000000.000 (2023-11-14T22:13:20.000Z)"


def test_csv_times_from_the_record_start(tmp_path: Path) -> None:
    """A CSV's time_s counts from the record's start: --train-until 300 cuts at 5 minutes."""
    rows = ["time_s,HR"] + [f"{60 * i},{70 + i % 3}" for i in range(12)]
    path = tmp_path / "n.csv"
    path.write_text("\n".join(rows) + "\n")
    rec = load_recording(path, LoadOptions({"HR": "heart_rate"}))
    cut = plan_split([rec], TrainRange(until=parse_time("300")))[0]
    assert (cut.train, cut.held_out) == (5, 7)
    assert "(t 0 .. 240, 5 samples)" in cut.describe()
