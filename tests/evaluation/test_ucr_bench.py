"""bench/ucr.py's reading of the UCR anomaly archive's two file shapes, and bench/nab.py's
clock, which it shares (sub-second times keep their fraction), and NAB's own score."""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

from tests.support.bench import load_bench


@pytest.fixture(scope="module")
def ucr() -> ModuleType:
    return load_bench("ucr")


def test_the_archive_names_its_anomaly_one_based(ucr: ModuleType, tmp_path: Path) -> None:
    """``..._<train>_<begin>_<end>.txt``: samples begin .. end counted from 1."""
    src = tmp_path / "007_UCR_Anomaly_Pig_4_6_7.txt"
    src.write_text("1.0\n2.0 3.0\n4.0\n5.0\n6.0\n7.0\n8.0\n", encoding="utf-8")
    name, values, first, last = ucr.read_series(src)
    assert name == "007_UCR_Anomaly_Pig_4_6_7"
    assert values == ["1.0", "2.0", "3.0", "4.0", "5.0", "6.0", "7.0", "8.0"]
    assert (values[first], values[last]) == ("6.0", "7.0")


def test_aeons_copy_marks_the_anomaly_by_row(ucr: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "135_UCR_Anomaly_Pig16_TEST.csv"
    src.write_text(
        "timestamp,value,is_anomaly\n0,60.5,0\n1,61.0,1\n2,80.0,1\n3,60.0,0\n", encoding="utf-8"
    )
    assert ucr.read_series(src) == ("135_UCR_Anomaly_Pig16", ["60.5", "61.0", "80.0", "60.0"], 1, 2)
    src.write_text("timestamp,value,is_anomaly\n0,60.5,0\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="no row has is_anomaly = 1"):
        ucr.read_series(src)


def test_a_misnamed_archive_file_is_refused(ucr: ModuleType, tmp_path: Path) -> None:
    src = tmp_path / "series.txt"
    src.write_text("1.0\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="not named"):
        ucr.read_series(src)


def test_window_times_keep_their_fraction(ucr: ModuleType) -> None:
    """At 100 samples a second a 12-sample anomaly lasts 0.12 s: its window must not be cut
    to whole seconds (it was: the window then missed the sample that detected it)."""
    nab = sys.modules["nab"]
    assert nab.nab_time("2020-01-01 00:00:41.870000") - nab.nab_time("2020-01-01 00:00:41") == (
        pytest.approx(0.87)
    )
    assert nab.nab_time("2014-02-19 15:50:00") == 1392825000.0


def test_nab_score_of_a_hand_worked_series(ucr: ModuleType) -> None:
    """100 rows (15 probationary), one window of rows 40..49. Row 10 is probationary: nothing.
    Row 30 precedes every window: -0.11. Row 42 is the window's first detection, 8 rows
    before its end of 10: (2/(1+e^-4) - 1) / (2/(1+e^-5) - 1) = 0.977107; row 45 adds
    nothing. Row 59 lies 10/9 window-lengths past its end: 0.11 x (2/(1+e^5.556) - 1) =
    -0.109153. Normalized: 100 x (raw + 1) / 2."""
    nab = sys.modules["nab"]
    raw, windows = nab.nab_raw(100, [(40, 49)], [10, 30, 42, 45, 59])
    assert windows == 1
    assert raw == pytest.approx(0.977107 - 0.11 - 0.109153, abs=1e-6)
    assert nab.nab_normalized(raw, windows) == pytest.approx(50 * (raw + 1))
    assert nab.nab_raw(100, [(40, 49)], [])[0] == -1.0  # a missed window
    assert nab.nab_normalized(-1.0, 1) == 0.0  # silence scores 0
    assert nab.nab_normalized(-0.11, 0) is None  # no window: only a pooled cost
    assert nab.nab_normalized(nab.nab_raw(100, [(40, 49)], [40])[0], 1) == pytest.approx(100.0)


def test_nab_score_probation_and_onset_rows(ucr: ModuleType) -> None:
    """A window ending in the probationary rows is not scored; an onset's row is the last row
    at or before its time."""
    nab = sys.modules["nab"]
    assert nab.nab_raw(100, [(2, 5), (40, 49)], [3]) == (-1.0, 1)
    times = [0.0, 60.0, 120.0, 180.0]
    assert nab._rows_of(times, [0.0, 60.0, 179.999999, 180.0, 500.0]) == [0, 1, 3, 3, 3]
