"""The pipeline's registry: the card's signals merged with the settings' own."""

from __future__ import annotations

import json

import numpy as np
import pytest
from prometheus_client import CollectorRegistry

from monitor.core.stuck import flatline_samples
from monitor.core.vitals import Registry, Vital
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.errors import SettingsError
from monitor.service.metrics import Metrics
from monitor.settings import Settings
from tests.support.ingest import ingest_one

ECG = Vital("ecg_mv", "mV", -5.0, 5.0, "ecg_mv")
T0 = 1_700_000_000.0


def _model(**fields: object) -> ModelInfo:
    return ModelInfo(("ecg_mv",), 8, np.array([0.1]), "v", signals=Registry([ECG]), **fields)  # type: ignore[arg-type]


def _settings(**signal: object) -> Settings:
    base = {"name": "ecg_mv", "unit": "mV", "low": -5.0, "high": 5.0}
    return Settings.model_validate({"signals": [{**base, **signal}]})


def test_settings_may_repeat_a_card_signal_but_not_change_its_bounds() -> None:
    """Same unit and bounds: accepted; other bounds: refused at start-up (exit code 2)."""
    metrics = Metrics.create(CollectorRegistry())
    Pipeline(_model(), _settings(description="lead II"), metrics)
    with pytest.raises(SettingsError, match="defined twice"):
        Pipeline(_model(), _settings(low=-10.0), Metrics.create(CollectorRegistry()))


def test_a_settings_signal_is_known_to_the_codec_beside_the_model() -> None:
    """A message carrying a settings-registered signal the model lacks is accepted."""
    settings = Settings.model_validate(
        {"signals": [{"name": "icp", "unit": "mmHg", "low": -10, "high": 80}]}
    )
    p = Pipeline(_model(), settings, Metrics.create(CollectorRegistry()))
    body = {"v": 1, "patient_id": "a", "t": T0, "seq": 0, "vitals": {"ecg_mv": 0.1, "icp": 9.0}}
    ingest_one(p, "vitals/a", json.dumps(body).encode(), T0)
    assert len(p.windows) == 1
    bad = {**body, "seq": 1, "vitals": {"ecg_mv": 0.1, "etco2": 35.0}}
    ingest_one(p, "vitals/a", json.dumps(bad).encode(), T0 + 1)
    reasons = {
        s.labels["reason"]: s.value
        for family in p.metrics.registry.collect()
        if family.name == "monitor_invalid_messages"
        for s in family.samples
        if s.name.endswith("_total")
    }
    assert reasons["unknown_vital"] == 1


def test_declared_flatline_run_beats_the_learned_one() -> None:
    """A signal's flatline_samples (settings) wins over the card's learned run, else learned."""
    model = _model(flatline_samples=(24,))
    assert flatline_samples(model.features, model.flatline_samples, Registry([ECG])) == [24]
    served = Pipeline(model, _settings(flatline_samples=60), Metrics.create(CollectorRegistry()))
    assert flatline_samples(model.features, model.flatline_samples, served.signals) == [60]
    plain = _model()
    assert flatline_samples(plain.features, plain.flatline_samples, Registry([ECG])) == [5]


def test_per_vital_overrides_name_registered_signals_and_refuse_unknown_ones() -> None:
    """`detector.per_vital` may tune a signal of the card or the settings; a name known to
    neither (a typo) stops the daemon at start-up, like any bad setting."""
    p = Pipeline(
        _model(),
        Settings.model_validate({"detector": {"per_vital": {"ecg_mv": {"threshold": 5.0}}}}),
        Metrics.create(CollectorRegistry()),
    )
    assert p.detector.config.resolve("ecg_mv").threshold == 5.0
    typo = Settings.model_validate({"detector": {"per_vital": {"ecg_mw": {"threshold": 5.0}}}})
    with pytest.raises(SettingsError, match=r"per_vital names unknown .*ecg_mw"):
        Pipeline(_model(), typo, Metrics.create(CollectorRegistry()))
    with pytest.raises(ValueError, match="per_vital names unknown"):
        Settings.model_validate({"detector": {"per_vital": {"Heart Rate": {"k": 1}}}})
