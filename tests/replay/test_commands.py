"""The import and replay commands through the CLI, on the bench data where present."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.replay.recording import read_recording

BENCH = Path(__file__).resolve().parents[2] / ".." / "shared" / "bench-data" / "physionet"
MIMIC = BENCH / "mimic2_s00001_numerics.csv"
BEATS = BENCH / "mitdb_100_beats.csv"
needs_bench = pytest.mark.skipif(not MIMIC.exists(), reason="bench data not present")


@needs_bench
def test_import_icu_numerics_with_zero_as_missing(tmp_path: Path) -> None:
    """Every row with some non-zero mapped value becomes one sample; zeros never appear."""
    out = tmp_path / "mimic.jsonl.gz"
    args = [
        "import",
        str(MIMIC),
        "--out",
        str(out),
        "--patient-id",
        "s00001",
        "--zero-is-missing",
        "--map",
        "HR=heart_rate",
        "--map",
        "SpO2=spo2",
        "--map",
        "RESP=resp_rate",
        "--start-time",
        "1000000000",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    with MIMIC.open() as f:
        rows = list(csv.DictReader(f))
    expected = [r for r in rows if any(float(r[c] or 0) != 0 for c in ("HR", "SpO2", "RESP"))]
    messages = [json.loads(r.payload) for r in read_recording(out)]
    assert len(messages) == len(expected)
    assert [m["seq"] for m in messages] == list(range(len(expected)))
    assert messages[-1]["t"] == 1_000_000_000 + float(expected[-1]["time_s"])
    assert all(0.0 not in m["vitals"].values() for m in messages)


@needs_bench
def test_import_per_beat_heart_rate_onto_a_one_second_grid(tmp_path: Path) -> None:
    """Irregular beats with --period 1 give strictly one-second-spaced heart_rate samples."""
    out = tmp_path / "beats.jsonl"
    args = ["import", str(BEATS), "--out", str(out), "--patient-id", "mitdb-100", "--period", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    messages = [json.loads(r.payload) for r in read_recording(out)]
    times = [m["t"] for m in messages]
    assert all(b - a >= 1.0 and (b - a) % 1.0 == 0 for a, b in itertools.pairwise(times))
    assert {tuple(m["vitals"]) for m in messages} == {("heart_rate",)}


def test_replay_offline_needs_alerts_and_defaults_to_the_shipped_model(tmp_path: Path) -> None:
    """--offline without --alerts is a usage error (exit 2); without --model it serves the
    shipped model, as `monitor run` does."""
    rec = tmp_path / "r.jsonl"
    rec.write_text("")
    result = CliRunner().invoke(main, ["replay", str(rec), "--offline"])
    assert result.exit_code == 2
    assert "--offline needs --alerts OUT" in result.output
    sim = tmp_path / "sim.jsonl"
    made = CliRunner().invoke(
        main,
        [
            "simulate",
            "--recording",
            str(sim),
            "--patients",
            "1",
            "--duration",
            "130",
            "--seed",
            "2",
        ],
    )
    assert made.exit_code == 0, made.output
    alerts = tmp_path / "a.jsonl"
    done = CliRunner().invoke(main, ["replay", str(sim), "--offline", "--alerts", str(alerts)])
    assert done.exit_code == 0, done.output
    assert "10 samples scored" in done.output
    assert "alarm gains: heart_rate x1.00" in done.output


def test_import_bad_map_is_a_usage_error(tmp_path: Path) -> None:
    """A --map value without '=' is refused with exit code 2."""
    src = tmp_path / "a.csv"
    src.write_text("time_s,HR\n0,60\n")
    args = [
        "import",
        str(src),
        "--out",
        str(tmp_path / "o.jsonl"),
        "--patient-id",
        "p",
        "--map",
        "HR",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2
    assert "expected COLUMN=vital" in result.output


def test_import_warns_of_values_serving_will_refuse(tmp_path: Path) -> None:
    """Values outside a vital's plausible range get one WARNING line per vital, with the
    --zero-is-missing hint where they are zeros; they are still written (the import keeps
    the data as it is), and with --zero-is-missing only the non-zero one is left."""
    src = tmp_path / "numerics.csv"
    src.write_text("time_s,HR,SpO2\n0,0,97\n60,72,0\n120,71,0\n180,70,150\n240,70,98\n")
    out = tmp_path / "o.jsonl"
    args = ["import", str(src), "--out", str(out), "--patient-id", "p"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING: heart_rate: 1 of 5 values outside its plausible range [10, 300] bpm; serving "
        "takes each for an artifact (a technical alert) and scores none of them; 1 of them are "
        "0: if 0 means no value here, import with --zero-is-missing",
        "WARNING: spo2: 3 of 5 values outside its plausible range [40, 100] %; serving takes "
        "each for an artifact (a technical alert) and scores none of them; 2 of them are 0: if "
        "0 means no value here, import with --zero-is-missing",
    ]
    assert len(list(read_recording(out))) == 5
    result = CliRunner().invoke(main, [*args, "--zero-is-missing"])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if line.startswith("WARNING")]
    assert warnings == [
        "WARNING: spo2: 1 of 3 values outside its plausible range [40, 100] %; serving takes "
        "each for an artifact (a technical alert) and scores none of them"
    ]
