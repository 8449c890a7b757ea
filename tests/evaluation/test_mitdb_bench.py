"""bench/mitdb.py's conversion of tpcp's MIT-BIH copy into the bench's record shape."""

from __future__ import annotations

import csv
import gzip
from pathlib import Path

import pandas as pd

from tests.support.bench import load_bench


def test_a_record_is_written_as_the_bench_reads_its_own(tmp_path: Path) -> None:
    """The signal at 360 Hz with its times; every beat with its symbol, V for the PVCs."""
    mitdb = load_bench("mitdb")
    src = tmp_path / "data"
    src.mkdir()
    pd.DataFrame({"ecg": [0.1, -0.25, 1.5, 0.0]}).to_pickle(src / "119.pk.gz", protocol=4)
    pd.DataFrame({"R": [2, 3]}).to_csv(src / "119_all.csv")
    pd.DataFrame({"PVC": [3]}).to_csv(src / "119_pvc.csv")
    out = tmp_path / "out"
    out.mkdir()
    signal, notes, n_pvc = mitdb.convert(src, "119", out)
    assert n_pvc == 1
    with gzip.open(out / signal, "rt", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    assert rows[0] == ["time_s", "MLII_mV"]
    assert rows[1:] == [
        ["0.0000", "0.1000"],
        ["0.0028", "-0.2500"],
        ["0.0056", "1.5000"],
        ["0.0083", "0.0000"],
    ]
    with (out / notes).open(encoding="utf-8") as f:
        beats = list(csv.reader(f))
    assert beats == [
        ["sample", "time_s", "symbol", "aux"],
        ["2", "0.0056", "N", ""],
        ["3", "0.0083", "V", ""],
    ]
