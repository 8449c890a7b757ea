"""bench/realdata.py's own arithmetic: labels derived from annotations (its fallback until
`monitor import --labels-from` lands) and the pooled rows, on tiny real-shaped files."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

from monitor.replay.labels import read_labels

BENCH = Path(__file__).resolve().parents[2] / "bench" / "realdata.py"


@pytest.fixture(scope="module")
def realdata() -> ModuleType:
    spec = importlib.util.spec_from_file_location("realdata", BENCH)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["realdata"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_beat_labels_are_the_abnormal_beats_at_their_times(
    realdata: ModuleType, tmp_path: Path
) -> None:
    ann = tmp_path / "ann.csv"
    ann.write_text(
        "sample,time_s,symbol,aux\n18,0.0500,+,(N\n77,0.2139,N,\n370,1.0278,A,\n"
        "662,1.8389,V,\n946,2.6278,N,\n",
        encoding="utf-8",
    )
    out = tmp_path / "labels.csv"
    spec = realdata.SPECS["mitdb100_beats"]
    assert realdata.fallback_labels(spec, ann, out, None) == 2
    labels = read_labels(out)
    start = realdata.START
    assert [(lab.patient_id, lab.kind, lab.start_t, lab.end_t) for lab in labels] == [
        ("mitdb100_beats", "beat_A", start + 1.0278, start + 1.0278),
        ("mitdb100_beats", "beat_V", start + 1.8389, start + 1.8389),
    ]
    assert realdata.fallback_labels(spec, ann, out, 1.5) == 1  # a cut signal


def test_event_labels_pair_initiate_with_conclude_and_last_a_duration(
    realdata: ModuleType, tmp_path: Path
) -> None:
    ann = tmp_path / "events.csv"
    ann.write_text(
        "time_s,event\n348.960,Initiate slow tilt up\n400.428,Conclude slow tilt up\n"
        "1052.188,Movement artifacts\n",
        encoding="utf-8",
    )
    out = tmp_path / "labels.csv"
    assert realdata.fallback_labels(realdata.SPECS["rec12726_bp"], ann, out, None) == 2
    start = realdata.START
    labels = read_labels(out)
    assert [lab.kind for lab in labels] == ["slow_tilt_up", "movement"]
    times = [(lab.start_t - start, lab.end_t - start) for lab in labels]
    assert times == [
        (pytest.approx(348.96), pytest.approx(400.428 + 30)),
        (pytest.approx(1052.188), pytest.approx(1052.188 + 30)),
    ]


def test_pooled_rows_sum_counts_over_labelled_records(realdata: ModuleType) -> None:
    def row(events: int, found: int, false: int, hours: float) -> dict[str, object]:
        return {"events": events, "detected": found, "false_alerts": false, "scored_hours": hours}

    results = [
        {"labels": 10, "rows_by": {"product": row(10, 5, 5, 1.0)}},
        {"labels": 30, "rows_by": {"product": row(30, 15, 0, 3.0)}},
        {"labels": 0, "rows_by": {"product": row(0, 0, 99, 9.0)}},  # unlabelled: left out
    ]
    got = realdata.pooled(results, "product")
    assert got == {"precision": 0.8, "recall": 0.5, "f1": pytest.approx(8 / 13), "fa_h": 1.25}
