"""A setting that takes null (off, or the model card's default) can be given null from a
TOML file, where the string "null" stands for it, and from the environment."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.errors import SettingsError
from monitor.service.metrics import Metrics
from monitor.settings import NULL, load_settings


def test_null_from_a_toml_file_and_the_environment_turns_a_setting_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vital_lost_intervals = "null"` turns `vital_lost` off (a pipeline serving a masked
    model has no lost-vital watch), `spike = "null"` the spike rule; the environment's
    `null` does the same for another setting; unset, the defaults hold."""
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[window]\nvital_lost_intervals = "{NULL}"\n\n[detector]\nspike = "{NULL}"\n'
        "per_vital = { spo2 = { threshold = 5.0 } }\n"
    )
    monkeypatch.setenv("MONITOR_DETECTOR__SHIFT_SUM", NULL)
    settings = load_settings(config)
    assert settings.window.vital_lost_intervals is None
    assert settings.detector.spike is None
    assert settings.detector.shift_sum is None
    assert settings.detector.per_vital["spo2"].threshold == 5.0
    info = ModelInfo(("heart_rate", "spo2"), 4, np.ones(2), "v", observed_mask=True)
    assert Pipeline(info, settings, Metrics.create(CollectorRegistry())).scorer.lost is None
    monkeypatch.delenv("MONITOR_DETECTOR__SHIFT_SUM")
    defaults = load_settings()
    assert defaults.window.vital_lost_intervals == 4.0
    assert defaults.detector.spike == 5.5
    assert Pipeline(info, defaults, Metrics.create(CollectorRegistry())).scorer.lost is not None


def test_null_for_a_setting_that_cannot_be_null_names_it(tmp_path: Path) -> None:
    """A required number given "null" is refused, one line naming the setting; a file that
    is not TOML still names the file."""
    config = tmp_path / "monitor.toml"
    config.write_text(f'[window]\nmax_patients = "{NULL}"\n')
    with pytest.raises(SettingsError) as err:
        load_settings(config)
    assert [line.split(":")[0] for line in err.value.problems] == ["window.max_patients"]
    config.write_text("[window\n")
    with pytest.raises(SettingsError, match=r"monitor\.toml"):
        load_settings(config)


def test_null_in_a_vital_s_override_turns_a_rule_off_for_that_vital(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`per_vital = { spo2 = { spike = "null" } }` in TOML, or `null` in the environment's
    nested form, turns the spike rule off for that vital alone; a vital's threshold given
    "null" is refused, one line naming the setting."""
    config = tmp_path / "monitor.toml"
    config.write_text(
        f'[detector]\nper_vital = {{ spo2 = {{ spike = "{NULL}" }}, heart_rate = {{ k = 3 }} }}\n'
    )
    settings = load_settings(config)
    assert settings.detector.resolve("spo2").spike is None
    assert settings.detector.resolve("heart_rate").spike == 5.5
    monkeypatch.setenv("MONITOR_DETECTOR__PER_VITAL__RESP_RATE__VARIANCE_LEVEL", NULL)
    from_env = load_settings()
    assert from_env.detector.resolve("resp_rate").variance_level is None
    assert from_env.detector.resolve("spo2").variance_level == 1.8
    config.write_text(f'[detector]\nper_vital = {{ spo2 = {{ threshold = "{NULL}" }} }}\n')
    monkeypatch.delenv("MONITOR_DETECTOR__PER_VITAL__RESP_RATE__VARIANCE_LEVEL")
    with pytest.raises(SettingsError) as err:
        load_settings(config)
    assert [line.split(":")[0] for line in err.value.problems] == ["detector.per_vital.spo2"]
    assert "threshold: null turns off only" in err.value.problems[0]
