"""WFDB records as real monitors write them: signals at their own rates, stated units.

A multi-frequency record (ECG at 360 Hz beside an arterial pressure at 180 Hz) imports
each signal at its own rate, trains a model that holds the slower one between its samples,
and replays with every sample scored; a waveform named as a numeric vital (``RESP`` in mV)
is not taken for that vital.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from monitor.cli import main
from monitor.core.vitals import Registry, parse_signal
from monitor.errors import DataError
from monitor.model.store import load_model
from monitor.replay.importers import merge_rows, read_wfdb_table, unit_conflict
from monitor.replay.offline import run_offline
from monitor.training.calibration import scaled_residuals
from monitor.training.data import cut_windows
from monitor.training.evaluation import compute_metrics
from monitor.training.recordings import Recording, hold_slower, split_recordings
from tests.support.ecg import ecg

# wfdb calls pandas with deprecated arguments; that is wfdb's warning, not ours.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

ECG = "ecg_mv:mV:-5:5"
ABP = "abp:mmHg:0:300"
FRAME_HZ = 180.0  # the ECG has 2 samples a frame (360 Hz), the pressure 1 (180 Hz)


def write_record(
    directory: Path,
    name: str,
    signals: list[np.ndarray],
    names: list[str],
    units: list[str],
    per_frame: list[int],
    fs: float = FRAME_HZ,
) -> Path:
    import wfdb

    wfdb.wrsamp(
        name,
        fs=fs,
        units=units,
        sig_name=names,
        e_p_signal=signals,
        samps_per_frame=per_frame,
        fmt=["16"] * len(names),
        adc_gain=[1000.0 if unit == "mV" else 100.0 for unit in units],
        baseline=[0] * len(names),
        write_dir=str(directory),
    )
    return directory / name


def monitor_record(directory: Path, seconds: float) -> tuple[Path, np.ndarray, np.ndarray]:
    """An ECG lead at 360 Hz and an arterial pressure pulse at 180 Hz, beats every 0.8 s."""
    _, lead, _ = ecg(seconds)
    t_abp = np.arange(len(lead) // 2) / FRAME_HZ
    phase = (t_abp - 0.5) % 0.8
    pressure = 80.0 + 40.0 * np.exp(-phase / 0.25) * (phase < 0.6)
    pressure = np.round(pressure, 2)
    lead = np.round(lead[: 2 * len(t_abp)], 3)
    record = write_record(directory, "mr", [lead, pressure], ["II", "ABP"], ["mV", "mmHg"], [2, 1])
    return record, lead, pressure


def test_each_signal_keeps_its_own_rate(tmp_path: Path) -> None:
    """The ECG is read at its 360 Hz, sample for sample (not averaged to the frame rate),
    and the pressure at 180 Hz: present at every other row, absent between."""
    record, lead, pressure = monitor_record(tmp_path, 4.0)
    signals = Registry([parse_signal(ECG), parse_signal(ABP)])
    table = read_wfdb_table(record, mapping={"II": "ecg_mv", "ABP": "abp"}, signals=signals)
    assert len(table.times) == len(lead)
    np.testing.assert_allclose(table.times, np.arange(len(lead)) / 360.0)
    np.testing.assert_allclose(table.columns["ecg_mv"], lead, atol=1e-3)
    np.testing.assert_allclose(table.columns["abp"][::2], pressure, atol=1e-3)
    assert np.isnan(table.columns["abp"][1::2]).all()
    assert table.notes == (
        "signals at their own rates: II 360 Hz, ABP 180 Hz (a sample holds those sampled at it)",
    )
    merged = merge_rows(table)
    assert len(merged.times) == len(lead)  # one sample per ECG sample, none merged
    assert merged.merged == 0


def test_one_rate_reads_as_before(tmp_path: Path) -> None:
    """A record whose signals share the frame rate: one row a frame and no note."""
    hr = np.array([60.0, 61.0, 62.0, 63.0])
    record = write_record(tmp_path, "one", [hr], ["HR"], ["bpm"], [1], fs=1.0)
    table = read_wfdb_table(record)
    np.testing.assert_allclose(table.times, [0.0, 1.0, 2.0, 3.0])
    np.testing.assert_allclose(table.columns["heart_rate"], hr)
    assert table.notes == ()


def test_a_waveform_named_as_a_numeric_is_not_that_numeric(tmp_path: Path) -> None:
    """``RESP`` in mV is a respiration waveform, not breaths a minute: the default names
    leave it out and say so; alone, nothing maps and the error names its unit; mapped
    explicitly it is taken with a warning."""
    n = 8
    hr, resp = np.full(n, 72.0), np.linspace(-0.5, 0.5, n)
    record = write_record(tmp_path, "r", [hr, resp], ["HR", "RESP"], ["bpm", "mV"], [1, 1], 1.0)
    table = read_wfdb_table(record)
    assert list(table.columns) == ["heart_rate"]
    assert len(table.notes) == 1
    assert table.notes[0].startswith("RESP (mV) not mapped to resp_rate (/min): another unit")

    alone = write_record(tmp_path, "alone", [resp], ["RESP"], ["mV"], [1], 1.0)
    with pytest.raises(DataError, match=r"no column maps to a vital.*RESP is in mV"):
        read_wfdb_table(alone)

    table = read_wfdb_table(record, mapping={"RESP": "resp_rate"})
    assert list(table.columns) == ["resp_rate"]
    assert table.notes == (
        "WARNING: RESP is in mV, resp_rate in /min: the values are taken as they are",
    )


def test_a_signal_stating_no_unit_is_judged_by_its_values(tmp_path: Path) -> None:
    """WFDB's ``NU`` (no unit given) contradicts no unit, so the values decide: a ``RESP``
    whose values all lie outside resp_rate's [1, 80] /min (a bedside record's waveform,
    the Challenge's v102s) is left out by name; a heart rate in range is taken."""
    n = 20
    hr, resp = np.full(n, 72.0), 0.5 * np.sin(np.arange(n) / 3.0)
    record = write_record(tmp_path, "nu", [hr, resp], ["HR", "RESP"], ["NU", "NU"], [1, 1], 1.0)
    table = read_wfdb_table(record)
    assert list(table.columns) == ["heart_rate"]
    assert table.notes == (
        "RESP (no unit stated) not mapped to resp_rate: its values are not in [1, 80] /min "
        "(a waveform?); map it with --map, or register it with --signal, to import it",
    )
    alone = write_record(tmp_path, "alone", [resp], ["RESP"], ["NU"], [1], 1.0)
    with pytest.raises(DataError, match=r"no signal maps to a vital; RESP \(no unit stated\)"):
        read_wfdb_table(alone)
    assert list(read_wfdb_table(alone, mapping={"RESP": "resp_rate"}).columns) == ["resp_rate"]


@pytest.mark.parametrize(
    ("stated", "expected", "conflict"),
    [
        ("BPM", "/min", False),
        ("pm", "/min", False),  # MIMIC-II's numerics: RESP in "pm", per minute
        ("Deg C", "C", False),
        ("%SpO2", "%", False),
        ("degF", "C", True),
        ("bpm", "bpm", False),
        ("1/min", "bpm", False),
        ("NU", "%", False),  # WFDB's "no unit given" contradicts nothing
        ("", "mmHg", False),
        ("mm Hg", "mmHg", False),
        ("degC", "C", False),
        ("mV", "/min", True),
        ("Ohm", "/min", True),
        ("uV", "mV", True),
        ("kPa", "mmHg", True),
    ],
)
def test_unit_conflict(stated: str, expected: str, conflict: bool) -> None:
    assert unit_conflict(stated, expected) is conflict


def test_hold_slower_fills_a_slower_vital_only() -> None:
    """A vital every other grid step is held between its samples (for up to 1.5 of its
    own periods); a vital at the grid's rate keeps a missing value as a gap."""
    nan = np.nan
    times = np.arange(10, dtype=np.float64)
    values = np.array(
        [
            [1, 10],
            [2, nan],
            [nan, 12],
            [4, nan],
            [5, 14],
            [6, nan],
            [7, nan],  # the slow vital's 16 never came: longer than 1.5 of its periods
            [8, nan],
            [9, 18],
            [10, nan],
        ],
        dtype=np.float64,
    )
    held, slower = hold_slower(values, times, 1.0)
    assert slower == {1: 2.0}
    np.testing.assert_array_equal(held[:, 0], values[:, 0])  # the fast vital's gap stays
    np.testing.assert_array_equal(held[:, 1], [10, 10, 12, 12, 14, 14, 14, nan, 18, 18])
    assert np.isnan(values[1, 1])  # the input is not changed

    recording = Recording("r", ("heart_rate", "bp_sys"), times, values)
    data = split_recordings([recording], 0.8, 0.25)
    assert data.held == {"bp_sys": 2.0}


def test_held_values_are_read_flagged_and_never_scored() -> None:
    """Training segments keep where each value was sampled: their windows carry the flags
    serving gives (a held value unobserved), and the held-out figures, the residual sigma
    and the calibration's z leave the held targets out."""
    n = 40
    times = np.arange(n, dtype=np.float64)
    fast = 70.0 + np.sin(times / 3.0)
    slow = np.where(times % 2 == 0, 120.0 + times, np.nan)
    recording = Recording("r", ("heart_rate", "bp_sys"), times, np.column_stack([fast, slow]))
    data = split_recordings([recording], 0.5, 0.2)
    (segment,) = data.train
    assert segment.observed is not None
    np.testing.assert_array_equal(segment.observed[:, 1], np.arange(len(segment.values)) % 2 == 0)
    windows = cut_windows(data.test, 4, 2)
    assert windows.observed is not None
    assert windows.observed.shape == (len(windows), 5, 2)
    flagged = windows.flagged()
    np.testing.assert_array_equal(flagged[:, :, :2], windows.x)
    np.testing.assert_array_equal(flagged[:, :, 2:], windows.observed[:, :4])
    sampled = windows.sampled_y()
    assert np.isnan(sampled[:, 1]).sum() == len(windows) // 2
    np.testing.assert_array_equal(sampled[:, 0], windows.y[:, 0])

    # Persistence as the model: zero error on a held target, which must not count.
    metrics = compute_metrics(
        data.features, windows.x[:, -1, :], sampled, windows.x[:, -1, :], None, np.ones(2)
    )
    assert metrics.per_feature["bp_sys"].n_test == len(windows) // 2
    assert metrics.per_feature["heart_rate"].n_test == len(windows)
    assert metrics.per_feature["bp_sys"].test_rmse == pytest.approx(2.0)  # +2 each sample

    def persistence(x: np.ndarray) -> np.ndarray:
        assert x.shape[-1] == 4  # values, then the observed flags
        return x[:, -1, :2]

    (z,) = scaled_residuals(data.train, persistence, 4, [1.0, 1.0])
    held = ~segment.observed[4:, 1]
    assert (z[held, 1] == 0.0).all()
    assert (z[~held, 1] != 0.0).all()


def run(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def test_a_mixed_rate_record_imports_trains_and_is_scored_throughout(tmp_path: Path) -> None:
    """Import, train and replay a record whose pressure is half the ECG's rate: training
    holds the pressure, the model takes an observed mask, and serving scores every sample
    after warm-up (none refused for the pressure it lacks), the pressure only where sent."""
    record, lead, _ = monitor_record(tmp_path, 30.0)
    rec, model = tmp_path / "mr.jsonl", tmp_path / "model"
    signals = ["--signal", ECG, "--signal", ABP]
    mapped = ["--map", "II=ecg_mv", "--map", "ABP=abp"]
    out = run(["import", str(record), "--out", str(rec), "--patient-id", "p", *signals, *mapped])
    assert "signals at their own rates: II 360 Hz, ABP 180 Hz" in out
    lines = rec.read_text().splitlines()[1:3]
    payloads = [json.loads(json.loads(line)["payload"]) for line in lines]
    assert [sorted(p["vitals"]) for p in payloads] == [["abp", "ecg_mv"], ["ecg_mv"]]

    features = ["--feature", "ecg_mv", "--feature", "abp"]
    tiny = ["--epochs", "1", "--window", "12", "--hidden-size", "4", "--batch-size", "256"]
    out = run(
        ["train", "--data", str(rec), *signals, *features, *tiny, "--quiet", "--out", str(model)]
    )
    assert "vitals at their own rates (abp every 0.005555" in out  # 1/180 s, grid 1/360 s
    card = load_model(model).card
    assert card.observed_mask
    per = card.metrics.per_feature  # the pressure scored on its own samples only
    assert per["abp"].n_test == pytest.approx(per["ecg_mv"].n_test / 2, abs=1)
    assert card.sample_period_s == pytest.approx(1 / 360.0, rel=1e-4)  # the ECG's rate

    result = run_offline(rec, model)
    assert result.records == len(lead)
    assert result.samples_scored == len(lead) - card.window
