"""Training data from the replay format: one series per patient."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from monitor.errors import DataError
from monitor.replay.recording import Record, RecordingWriter
from monitor.training.recordings import LoadOptions, load_recordings


def _write(path: Path) -> None:
    with RecordingWriter(path) as w:
        for seq in range(5):
            for pid, hr in (("a", 70.0 + seq), ("b", 90.0 - seq)):
                vitals = {"heart_rate": hr, "spo2": 97.0}
                if pid == "b" and seq == 2:
                    vitals = {"heart_rate": hr}
                body = {"v": 1, "patient_id": pid, "t": 100.0 + seq, "seq": seq, "vitals": vitals}
                w.write(Record(f"vitals/{pid}", json.dumps(body).encode(), 100.0 + seq))
        w.write(Record("vitals/x", b"not json", 200.0))


def test_one_series_per_patient_with_missing_values(tmp_path: Path) -> None:
    """Two patients give two series in time order; an absent vital is NaN; junk is skipped."""
    path = tmp_path / "r.jsonl.gz"
    _write(path)
    recs = load_recordings(path, LoadOptions())
    assert [r.source.rsplit("#", 1)[1] for r in recs] == ["a", "b"]
    assert recs[0].features == ("heart_rate", "spo2")
    assert recs[0].values[:, 0].tolist() == [70.0, 71.0, 72.0, 73.0, 74.0]
    assert recs[1].times.tolist() == [100.0, 101.0, 102.0, 103.0, 104.0]
    assert math.isnan(recs[1].values[2, 1])


def test_unknown_feature_is_refused(tmp_path: Path) -> None:
    """Asking for a vital that never appears names it in the error."""
    path = tmp_path / "r.jsonl"
    _write(path)
    with pytest.raises(DataError, match="temperature"):
        load_recordings(path, LoadOptions(features=("temperature",)))


def test_a_non_finite_reading_is_a_missing_value(tmp_path: Path) -> None:
    """NaN and Infinity (as Python's json writes a failed reading) pass the message schema,
    and the daemon drops them as the vital's artifact: in training data they are missing
    values, never numbers a model would learn from; the row's other vitals stay."""
    path = tmp_path / "r.jsonl"
    with RecordingWriter(path) as w:
        for seq, spo2 in enumerate([97.0, math.nan, math.inf, -math.inf, 96.0]):
            vitals = {"heart_rate": 70.0 + seq, "spo2": spo2}
            body = {"v": 1, "patient_id": "a", "t": 100.0 + seq, "seq": seq, "vitals": vitals}
            w.write(Record("vitals/a", json.dumps(body).encode(), 100.0 + seq))
    (rec,) = load_recordings(path, LoadOptions())
    assert rec.values[:, 0].tolist() == [70.0, 71.0, 72.0, 73.0, 74.0]
    assert [math.isnan(v) for v in rec.values[:, 1]] == [False, True, True, True, False]
