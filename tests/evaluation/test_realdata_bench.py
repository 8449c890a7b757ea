"""bench/realdata.py's own arithmetic: labels cut with the signal and the pooled rows, on
tiny real-shaped files."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from monitor.replay.labels import read_labels
from tests.support.bench import load_bench


@pytest.fixture(scope="module")
def realdata() -> ModuleType:
    return load_bench("realdata")


def test_a_cut_signal_keeps_only_the_labels_that_start_within_it(
    realdata: ModuleType, tmp_path: Path
) -> None:
    """With --ecg-minutes the labels past the cut are dropped (`monitor import
    --labels-from` writes them all; its own tests check the labels themselves)."""
    labels = tmp_path / "labels.csv"
    start = realdata.START
    labels.write_text(
        "patient_id,start,end,vital,kind,magnitude\n"
        f"p,{start + 1.0},{start + 1.0},,beat_A,\np,{start + 90.0},{start + 90.0},,beat_V,\n",
        encoding="utf-8",
    )
    realdata._cut_labels(labels, start + 60.0)
    assert [(lab.kind, lab.start_t) for lab in read_labels(labels)] == [("beat_A", start + 1.0)]


def test_pooled_rows_sum_counts_over_labelled_records(realdata: ModuleType) -> None:
    def row(events: int, found: int, false: int, hours: float) -> dict[str, object]:
        return {"events": events, "detected": found, "false_alerts": false, "scored_hours": hours}

    results = [
        {"labels": 10, "rows_by": {"product": row(10, 5, 5, 1.0)}},
        {"labels": 30, "rows_by": {"product": row(30, 15, 0, 3.0)}},
        {"labels": 0, "rows_by": {"product": row(0, 0, 99, 9.0)}},  # unlabelled: left out
        # a false alarm's window is no true event: left out too
        {"labels": 1, "alarm_window_s": (290.0, 300.0), "rows_by": {"product": row(1, 1, 7, 0.1)}},
    ]
    got = realdata.pooled(results, "product")
    assert got == {"precision": 0.8, "recall": 0.5, "f1": pytest.approx(8 / 13), "fa_h": 1.25}


def test_a_false_alarm_window_is_one_label_on_the_records_clock(
    realdata: ModuleType, tmp_path: Path
) -> None:
    """The Challenge records' only label is their false alarm's window, for any vital."""
    labels = tmp_path / "labels.csv"
    for name, hi in (("chal2015_v102s", 300.0), ("chal2015_a103l", 330.0)):
        realdata.write_alarm_label(realdata.SPECS[name], labels)
        got = [
            (lab.patient_id, lab.kind, lab.vital, lab.start_t, lab.end_t)
            for lab in read_labels(labels)
        ]
        start = realdata.START
        assert got == [(name, "false_alarm", None, start + 290.0, start + hi)]
