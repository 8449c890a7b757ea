"""bench/ucr.py's reading of the UCR anomaly archive's two file shapes, and bench/nab.py's
clock, which it shares (sub-second times keep their fraction)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parents[2] / "bench"


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def ucr() -> ModuleType:
    return _load("ucr")


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
