"""`monitor train` end to end on tiny configurations."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from click.testing import CliRunner

from monitor.commands.train import command
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


def test_data_recipe_without_files_is_a_usage_error(tmp_path: Path) -> None:
    """--recipe data needs --data."""
    result = CliRunner().invoke(command, ["--recipe", "data", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--data FILE is required" in result.output


def test_pooled_centred_model_serves_what_it_was_scored_on(tmp_path: Path) -> None:
    """Train/serve parity: the Predictor, fed the raw test windows, reproduces the test RMSE
    the trainer wrote into the card (same centring, pooling and normalisation code)."""
    import numpy as np

    from monitor.model.predictor import Predictor
    from monitor.training.data import cut_windows
    from monitor.training.masking import with_flags
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
