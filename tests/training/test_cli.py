"""`monitor train` end to end on tiny configurations."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from monitor.commands.train import command
from monitor.engine.pipeline import model_info_from_card
from monitor.model.store import load_model

TINY = ["--epochs", "2", "--window", "10", "--hidden-size", "4", "--batch-size", "32", "--quiet"]


def _run(args: list[str]) -> str:
    result = CliRunner().invoke(command, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_default_recipe_tiny(tmp_path: Path) -> None:
    """Simulated patients: model dir with weights, card, plots; metrics for all six vitals."""
    out = tmp_path / "m"
    output = _run(
        [
            "--out",
            str(out),
            "--patients",
            "2",
            "--val-patients",
            "1",
            "--test-patients",
            "1",
            "--seconds",
            "120",
            *TINY,
        ]
    )
    assert sorted(p.name for p in out.iterdir()) == [
        "card.json",
        "loss.png",
        "model.safetensors",
        "test_predictions.png",
    ]
    card = load_model(out).card
    assert card.training.recipe == "default"
    assert card.window == 10
    assert len(card.metrics.per_feature) == 6
    hr = card.metrics.per_feature["heart_rate"]
    assert hr.n_test == 110
    assert hr.noise_floor_rmse is not None
    assert hr.noise_floor_rmse > 0
    assert card.training.details["residual_sigma_source"] == "validation"
    assert card.residual_clip_at is None  # simulated, Gaussian residuals: the |z| < 3 scale
    assert "heart_rate" in output
    assert "overall (z)" in output


def test_same_command_gives_identical_weights(tmp_path: Path) -> None:
    """Two runs with the same seed write the same weights (same model_version)."""
    args = [
        "--patients",
        "1",
        "--val-patients",
        "1",
        "--test-patients",
        "1",
        "--seconds",
        "60",
        "--seed",
        "7",
        *TINY,
    ]
    _run(["--out", str(tmp_path / "a"), *args])
    _run(["--out", str(tmp_path / "b"), *args])
    a, b = load_model(tmp_path / "a"), load_model(tmp_path / "b")
    assert a.card.model_version == b.card.model_version
    assert torch.equal(a.model.fc.weight, b.model.fc.weight)


def test_seed_recipe_reports_like_the_seed(tmp_path: Path) -> None:
    """--recipe seed prints loss every 5 epochs and seed-style MSE over 160 test windows."""
    out = tmp_path / "s"
    output = _run(["--recipe", "seed", "--out", str(out), "--epochs", "5", "--quiet"])
    assert "Epoch [5/5], Loss: " in output
    assert "seed-style: 160 test windows" in output
    card = json.loads((out / "card.json").read_text())
    assert card["hyperparameters"] == {
        "input_size": 1,
        "hidden_size": 50,
        "num_layers": 2,
        "output_size": 1,
    }
    assert card["normalisation"] == {"mean": [0.0], "std": [1.0], "centring": "none"}
    assert card["pooling"] is None
    assert card["metrics"]["overall"]["n_test"] == 190
    assert card["metrics"]["extra"]["seed_style_n_test"] == 160.0


def test_data_recipe_on_csv(tmp_path: Path) -> None:
    """A CSV with HR mapped to heart_rate and 0 as missing trains a one-vital model."""
    rows = ["time_s,HR,RESP"]
    for i in range(200):
        hr = 0 if i in (50, 51) else 70 + 5 * ((i // 10) % 2)
        rows.append(f"{60 * i},{hr},14")
    csv = tmp_path / "n.csv"
    csv.write_text("\n".join(rows) + "\n")
    out = tmp_path / "d"
    _run(
        [
            "--data",
            str(csv),
            "--column",
            "HR=heart_rate",
            "--zero-is-missing",
            "--out",
            str(out),
            *TINY,
        ]
    )
    card = load_model(out).card
    assert card.features == ["heart_rate"]
    assert card.sample_period_s == 60.0
    assert card.training.recipe == "data"
    assert card.metrics.per_feature["heart_rate"].noise_floor_rmse is None
    assert card.metrics.per_feature["heart_rate"].n_test == 50  # 60 test rows - window 10
    # A real recording's model serves with the clipped residual scale (docs/detection.md).
    assert card.residual_clip_at == 6.0
    assert model_info_from_card(card).residual_clip_at == 6.0


def test_data_recipe_without_files_is_a_usage_error(tmp_path: Path) -> None:
    """--recipe data needs --data."""
    result = CliRunner().invoke(command, ["--recipe", "data", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--data FILE is required" in result.output


def test_pooled_centred_model_serves_what_it_was_scored_on(tmp_path: Path) -> None:
    """Train/serve parity: the Predictor, fed the raw test windows, reproduces the test RMSE
    the trainer wrote into the card (same centring, pooling and normalisation code)."""
    import numpy as np

    from monitor.model.features import with_flags
    from monitor.model.predictor import Predictor
    from monitor.training.data import cut_windows
    from monitor.training.simulated import simulated_patients

    out = tmp_path / "m"
    args = ["--patients", "2", "--val-patients", "1", "--test-patients", "1", "--seconds", "150"]
    tiny = [*TINY[:2], "--window", "12", *TINY[4:]]
    _run(["--out", str(out), *args, *tiny, "--pool-recent", "4", "--pool-block", "4"])
    card = load_model(out).card
    assert card.pooling is not None
    assert (card.pooling.recent, card.pooling.block) == (4, 4)
    assert card.normalisation.centring == "window_mean"
    test = cut_windows(simulated_patients(2, 1, 1, 150, 0).test, 12, 6)
    assert card.observed_mask  # the default recipe: values, then observed flags
    windows = with_flags(test.x).astype(np.float32)
    pred = Predictor(load_model(out), "cpu").predict(windows)
    rmse = np.sqrt(np.mean((pred[:, 0] - test.y[:, 0]) ** 2))
    assert abs(rmse - card.metrics.per_feature["heart_rate"].test_rmse) < 1e-3 * rmse


def test_pooling_that_does_not_tile_the_window_is_a_usage_error(tmp_path: Path) -> None:
    """window - pool_recent must be a multiple of pool_block: refused before any work."""
    args = ["--out", str(tmp_path), "--window", "12", "--pool-recent", "5", "--pool-block", "4"]
    result = CliRunner().invoke(command, args)
    assert result.exit_code == 2
    assert "not a multiple of pool_block" in result.output


def _sine_csv(path: Path, rows: int, period: int = 8) -> Path:
    """A real-shaped one-vital CSV: a noisy cycle every `period` samples, 1 s apart."""
    import numpy as np

    rng = np.random.default_rng(3)
    t = np.arange(rows)
    hr = 70 + 5 * np.sin(2 * np.pi * t / period) + 0.5 * rng.standard_normal(rows)
    path.write_text("time_s,HR\n" + "".join(f"{i},{v:.3f}\n" for i, v in zip(t, hr, strict=True)))
    return path


SMALL = ["--epochs", "2", "--hidden-size", "4", "--batch-size", "32", "--quiet"]


def test_train_first_holds_out_the_rest_and_reports_it(tmp_path: Path) -> None:
    """--train-first 200 of 300: the report names the rows, the window follows the period
    (8 samples -> 20), and the card scores model and persistence on the held-out rows."""
    csv = _sine_csv(tmp_path / "s.csv", 300)
    out = tmp_path / "m"
    args = ["--data", str(csv), "--column", "HR=heart_rate", "--train-first", "200"]
    output = _run([*args, "--out", str(out), *SMALL])
    assert "s.csv: training rows 0..199 (t 0 .. 199, 200 samples)" in output
    assert "held out rows 200..299 (t 200 .. 299, 100 samples)" in output
    assert "window 20: dominant period 8 samples" in output
    assert "Held-out report" in output
    assert "/persist" in output
    card = load_model(out).card
    assert card.window == 20
    hr = card.metrics.per_feature["heart_rate"]
    assert hr.n_test == 80  # 100 held-out rows - window 20
    assert hr.persistence_rmse > 0
    assert "first 200 samples train" in card.training.data
    assert "training rows 0..199" in card.training.data
    assert "dominant period 8 samples" in card.training.data


def test_train_fraction_and_until_cut_where_asked(tmp_path: Path) -> None:
    """--train-fraction 0.5 and --train-until 150 (seconds, as the CSV's times) agree."""
    csv = _sine_csv(tmp_path / "s.csv", 300)
    common = ["--data", str(csv), "--column", "HR=heart_rate", "--window", "10", *SMALL]
    by_fraction = _run([*common, "--out", str(tmp_path / "a"), "--train-fraction", "0.5"])
    by_time = _run([*common, "--out", str(tmp_path / "b"), "--train-until", "150"])
    for output in (by_fraction, by_time):
        assert "training rows 0..149 (t 0 .. 149, 150 samples)" in output
        assert "dominant period" not in output  # --window given: no choice made
    a, b = load_model(tmp_path / "a").card, load_model(tmp_path / "b").card
    assert a.metrics.per_feature["heart_rate"].n_test == 140
    assert a.model_version == b.model_version  # same rows, same seed: same weights


def test_sizes_come_from_the_data_unless_given(tmp_path: Path) -> None:
    """Without --epochs/--batch-size the data size decides them; given ones are kept."""
    csv = _sine_csv(tmp_path / "s.csv", 300)
    args = ["--data", str(csv), "--column", "HR=heart_rate", "--quiet", "--epochs", "3"]
    output = _run([*args, "--out", str(tmp_path / "m")])
    assert "from 158 training windows: batch size 32, train stride 1" in output
    assert "(--epochs as given)" in output
    card = load_model(tmp_path / "m").card
    assert card.training.epochs == 3
    assert card.training.batch_size == 32  # small data: small batches


def test_range_options_are_mutually_exclusive(tmp_path: Path) -> None:
    """Two of --split / --train-first / --train-until / --train-fraction: usage error."""
    csv = _sine_csv(tmp_path / "s.csv", 50)
    base = ["--data", str(csv), "--column", "HR=heart_rate", "--out", str(tmp_path / "m")]
    for extra in (
        ["--split", "0.5", "--train-first", "10"],
        ["--train-fraction", "0.15", "--train-until", "20"],
    ):
        result = CliRunner().invoke(command, [*base, *extra])
        assert result.exit_code == 2, result.output
        assert "mutually exclusive" in result.output


def test_range_options_need_data(tmp_path: Path) -> None:
    """--train-first on simulated patients is a usage error."""
    result = CliRunner().invoke(command, ["--out", str(tmp_path), "--train-first", "10"])
    assert result.exit_code == 2
    assert "--train-first needs --data FILE" in result.output


def test_bad_until_time_is_a_usage_error(tmp_path: Path) -> None:
    """--train-until that is neither a number nor ISO 8601 names the option."""
    csv = _sine_csv(tmp_path / "s.csv", 50)
    args = ["--data", str(csv), "--column", "HR=heart_rate", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(command, [*args, "--train-until", "noon"])
    assert result.exit_code == 2
    assert "--train-until" in result.output
    assert "ISO 8601" in result.output


def test_window_capped_by_a_short_validation_tail(tmp_path: Path) -> None:
    """--train-first 120: its 15% validation tail has 18 rows, so the window is 17."""
    csv = _sine_csv(tmp_path / "s.csv", 300)
    args = ["--data", str(csv), "--column", "HR=heart_rate", "--train-first", "120"]
    output = _run([*args, "--out", str(tmp_path / "m"), *SMALL])
    assert "window 17: dominant period 8 samples" in output
    assert "capped at 17" in output
    card = load_model(tmp_path / "m").card
    assert card.window == 17
    # One validation window cannot measure a spread (its sigma was 0): the training
    # windows' residuals join it, and the card says so.
    details = card.training.details
    assert details["residual_sigma_source"] == "training+validation"
    assert details["val_windows"] == (102 - 17) + (18 - 17)  # both parts, cut apart
    assert 0.1 < card.residual_sigma[0] < 20.0  # noise 0.5 and an untrained model's error


def test_range_beyond_the_data_is_a_one_line_data_error(tmp_path: Path) -> None:
    """--train-first past the end: exit 2, the file and the reason, no traceback."""
    csv = _sine_csv(tmp_path / "s.csv", 50)
    args = ["--data", str(csv), "--column", "HR=heart_rate", "--out", str(tmp_path / "m")]
    result = CliRunner().invoke(command, [*args, "--train-first", "50"])
    assert result.exit_code == 2
    assert f"Error: {csv}: first 50 samples leaves no held-out row (50 samples" in result.output
    assert "Traceback" not in result.output
