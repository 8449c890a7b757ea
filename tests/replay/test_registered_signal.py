"""A registered non-vital signal end to end: import, train, replay offline (ECG in mV)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from monitor.cli import main
from monitor.model.store import load_model
from monitor.replay.offline import run_offline

SIGNAL = "ecg_mv:mV:-5:5:0.0027778"
FS = 360.0


def ecg_csv(path: Path, seconds: float = 5.0, seed: int = 0) -> Path:
    """A real-shaped ECG lead at 360 Hz in mV, on MIT-BIH's 5 uV grid (200 adu/mV).

    Beats every 0.8 s (P, QRS, T) over a flat baseline with a little noise: values from about
    -0.5 to 2.5 mV, and many exact repeats on the baseline, as digitised ECGs have.
    """
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    phase = (t % 0.8) / 0.8
    wave = (
        2.6 * np.exp(-(((phase - 0.30) / 0.012) ** 2))
        - 0.4 * np.exp(-(((phase - 0.33) / 0.012) ** 2))
        + 0.15 * np.exp(-(((phase - 0.18) / 0.03) ** 2))
        + 0.3 * np.exp(-(((phase - 0.60) / 0.06) ** 2))
    )
    mv = np.clip(np.round((wave - 0.1 + rng.normal(0, 0.002, t.size)) / 0.005) * 0.005, -2, 3)
    lines = ["time_s,MLII"] + [f"{ti:.6f},{v:.3f}" for ti, v in zip(t, mv, strict=True)]
    path.write_text("\n".join(lines) + "\n")
    return path


def invoke(args: list[str]) -> str:
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    return result.output


def invalid(metrics: object, reason: str) -> float:
    registry = metrics.registry  # type: ignore[attr-defined]
    value = registry.get_sample_value("monitor_invalid_messages_total", {"reason": reason})
    return float(value or 0.0)


def test_import_train_and_replay_a_registered_ecg(tmp_path: Path) -> None:
    """The card lists the signal, so replaying with the model needs no other settings."""
    source = ecg_csv(tmp_path / "ecg.csv")
    rec, model = tmp_path / "ecg.jsonl", tmp_path / "model"
    invoke(
        [
            "import",
            str(source),
            "--out",
            str(rec),
            "--patient-id",
            "p1",
            "--signal",
            SIGNAL,
            "--map",
            "MLII=ecg_mv",
        ]
    )
    first = json.loads(json.loads(rec.read_text().splitlines()[1])["payload"])
    assert first["vitals"].keys() == {"ecg_mv"}
    invoke(
        [
            "train",
            "--data",
            str(rec),
            "--signal",
            SIGNAL,
            "--feature",
            "ecg_mv",
            "--epochs",
            "1",
            "--window",
            "10",
            "--hidden-size",
            "4",
            "--batch-size",
            "128",
            "--quiet",
            "--out",
            str(model),
        ]
    )

    card = load_model(model).card
    assert card.features == ["ecg_mv"]
    spec = card.signals["ecg_mv"]
    assert (spec.unit, spec.low, spec.high, spec.sample_period_s) == ("mV", -5.0, 5.0, 0.0027778)
    rule = card.flatline["ecg_mv"]
    assert rule.resolution == 0.005
    assert rule.samples > 5  # the baseline repeats values longer than 5 samples

    result = run_offline(rec, model)
    assert invalid(result.metrics, "unknown_vital") == 0
    assert invalid(result.metrics, "artifact") == 0
    assert result.samples_scored == 1800 - card.window  # every sample after warm-up
    assert not [a for a in result.alerts if a.reason == "flatline"]

    alerts = tmp_path / "alerts.jsonl"
    output = invoke(
        ["replay", str(rec), "--offline", "--model", str(model), "--alerts", str(alerts)]
    )
    assert f"{1800 - card.window} samples scored" in output

    # The same model with the fixed rule of older cards (no learned `flatline`) flags the
    # ECG's normal baseline repeats as stuck sensors.
    old = json.loads((model / "card.json").read_text())
    del old["flatline"]
    (model / "card.json").write_text(json.dumps(old))
    assert [a for a in run_offline(rec, model).alerts if a.reason == "flatline"]


def test_an_unregistered_signal_is_refused_with_the_way_to_register_it(tmp_path: Path) -> None:
    """Without --signal, mapping to or training on ecg_mv is one clear error, exit code 2."""
    source = ecg_csv(tmp_path / "ecg.csv", seconds=0.1)
    result = CliRunner().invoke(
        main,
        [
            "import",
            str(source),
            "--out",
            str(tmp_path / "r.jsonl"),
            "--patient-id",
            "p1",
            "--map",
            "MLII=ecg_mv",
        ],
    )
    assert result.exit_code == 2
    assert "unknown vital 'ecg_mv'" in result.output
    assert "--signal NAME:UNIT:LOW:HIGH" in result.output
    result = CliRunner().invoke(
        main, ["train", "--data", str(source), "--feature", "ecg_mv", "--out", str(tmp_path / "m")]
    )
    assert result.exit_code == 2
    assert "unknown vital 'ecg_mv'" in result.output
    result = CliRunner().invoke(
        main,
        [
            "import",
            str(source),
            "--out",
            str(tmp_path / "r.jsonl"),
            "--patient-id",
            "p1",
            "--signal",
            "spo2:%:0:100",
        ],
    )
    assert result.exit_code == 2
    assert "built-in vital" in result.output


def test_training_on_a_recording_of_unregistered_signals_says_what_it_found(
    tmp_path: Path,
) -> None:
    """A recording holding only ecg_mv, trained on without --signal: a one-line error."""
    rec = tmp_path / "r.jsonl"
    source = ecg_csv(tmp_path / "ecg.csv", seconds=0.2)
    invoke(
        [
            "import",
            str(source),
            "--out",
            str(rec),
            "--patient-id",
            "p1",
            "--signal",
            SIGNAL,
            "--map",
            "MLII=ecg_mv",
        ]
    )
    result = CliRunner().invoke(main, ["train", "--data", str(rec), "--out", str(tmp_path / "m")])
    assert result.exit_code != 0
    assert "no known vital in the recording (found ['ecg_mv'])" in result.output
    assert "Traceback" not in result.output
