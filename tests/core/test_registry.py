"""Registered signals: the registry, the codec resolving names in it, and the settings."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from monitor.core.codec import CodecLimits, Decoded, Rejection, decode
from monitor.core.vitals import BUILTIN, VITALS, Registry, Vital, parse_signal
from monitor.errors import SettingsError
from monitor.settings import load_settings
from tests.support.ingest import decode_one

NOW = 1_700_000_000.0
ECG = Vital("ecg_mv", "mV", -5.0, 5.0, "ECG lead II", 1 / 360)
ECG_LIMITS = CodecLimits(signals=Registry([ECG]))


def _payload(vitals: dict[str, float], t: float = NOW) -> bytes:
    body = {"v": 1, "patient_id": "p1", "t": t, "seq": 3, "vitals": vitals}
    return json.dumps(body).encode()


def test_registry_is_builtins_then_registered_signals() -> None:
    """Built-ins first, registered signals after; membership, lookup and equality by value."""
    registry = Registry([ECG])
    assert list(registry) == [*VITALS, "ecg_mv"]
    assert registry["ecg_mv"] is ECG
    assert "ecg_mv" in registry
    assert "ecg_mv" not in BUILTIN
    assert registry == Registry([ECG])
    assert hash(registry) == hash(Registry([ECG]))
    assert registry.is_builtin("spo2")
    assert not registry.is_builtin("ecg_mv")


@pytest.mark.parametrize(
    ("signal", "message"),
    [
        (Vital("heart_rate", "bpm", 0.0, 400.0, ""), "built-in vital"),
        (Vital("ECG", "mV", -5.0, 5.0, ""), "lowercase letters"),
        (Vital("ecg-mv", "mV", -5.0, 5.0, ""), "lowercase letters"),
        (Vital("ecg_mv", "mV", 5.0, 5.0, ""), "low < high"),
        (Vital("ecg_mv", "mV", float("nan"), 5.0, ""), "finite"),
        (Vital("ecg_mv", "mV", -5.0, 5.0, "", -1.0), "period"),
        (Vital("ecg_mv", "mV", -5.0, 5.0, "", None, 1), "flatline_samples"),
    ],
)
def test_a_bad_signal_is_refused_with_its_reason(signal: Vital, message: str) -> None:
    """Shadowing a built-in, a malformed name, bounds that are not low < high are refused."""
    with pytest.raises(ValueError, match=message):
        Registry([signal])


def test_merge_keeps_one_definition_and_refuses_conflicting_bounds() -> None:
    """The same signal from a card and the settings merges; other bounds are an error."""
    same = Vital("ecg_mv", "mV", -5.0, 5.0, "other words")
    assert Registry([ECG]).merge(Registry([same])).registered == (ECG,)
    cvp = Vital("cvp", "mmHg", -10.0, 40.0, "central venous pressure")
    assert [s.name for s in Registry([ECG]).merge(Registry([cvp])).registered] == [
        "ecg_mv",
        "cvp",
    ]
    with pytest.raises(ValueError, match="defined twice"):
        Registry([ECG]).merge(Registry([Vital("ecg_mv", "uV", -5000.0, 5000.0, "")]))


def test_parse_signal_option() -> None:
    """NAME:UNIT:LOW:HIGH[:PERIOD_S]; anything else is one clear error."""
    assert parse_signal("ecg_mv:mV:-5:5:0.0027778") == Vital(
        "ecg_mv", "mV", -5.0, 5.0, "ecg_mv", 0.0027778
    )
    assert parse_signal("index:1:0:1").sample_period_s is None
    for bad, why in (
        ("ecg_mv:mV:-5", "expected NAME:UNIT"),
        ("ecg_mv:mV:low:5", "must be numbers"),
        ("ecg_mv::-5:5", "expected NAME:UNIT"),
        ("spo2:%:0:100", "built-in vital"),
    ):
        with pytest.raises(ValueError, match=why):
            parse_signal(bad)


def test_codec_resolves_names_and_bounds_in_its_registry() -> None:
    """A registered signal is decoded with its own bounds; unknown without the registry."""
    ok = decode_one(
        _payload({"ecg_mv": -1.25}),
        topic_patient_id="p1",
        features=("ecg_mv",),
        now=NOW,
        limits=ECG_LIMITS,
    )
    assert isinstance(ok, Decoded)
    assert ok.samples[0].values.tolist() == [-1.25]
    unknown = decode_one(
        _payload({"ecg_mv": -1.25, "heart_rate": 70.0}),
        topic_patient_id="p1",
        features=("heart_rate",),
        now=NOW,
    )
    assert isinstance(unknown, Rejection)
    assert unknown.reason == "unknown_vital"
    assert "ecg_mv" in unknown.detail
    artifact = decode_one(
        _payload({"ecg_mv": 7.5}),
        topic_patient_id="p1",
        features=("ecg_mv",),
        now=NOW,
        limits=ECG_LIMITS,
    )
    assert isinstance(artifact, Rejection)
    assert (artifact.reason, artifact.vital) == ("artifact", "ecg_mv")
    assert "[-5, 5] mV" in artifact.detail


def test_a_batch_uses_the_registry_as_a_single_payload_does() -> None:
    """The columns of a batch use the same registry: same results, element for element."""
    payloads = [
        _payload({"ecg_mv": 0.5}),
        _payload({"ecg_mv": 9.0}),
        _payload({"ecg_mv": 0.5, "icp": 3.0}),
        _payload({"ecg_mv": 0.5, "spo2": 97.0}),
    ]
    features = ("ecg_mv",)
    many = decode(payloads, ["p1"] * 4, [NOW] * 4, features=features, limits=ECG_LIMITS).results()
    one = [
        decode_one(p, topic_patient_id="p1", features=features, now=NOW, limits=ECG_LIMITS)
        for p in payloads
    ]
    assert [type(r).__name__ for r in many] == ["Decoded", "Rejection", "Rejection", "Decoded"]
    assert [getattr(r, "reason", None) for r in many] == [
        None,
        "artifact",
        "unknown_vital",
        None,
    ]
    assert [getattr(r, "reason", None) for r in one] == [getattr(r, "reason", None) for r in many]


def test_settings_register_signals_from_toml_and_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`signals` in the TOML file or MONITOR_SIGNALS (JSON) builds the settings' registry."""
    config = tmp_path / "monitor.toml"
    config.write_text(
        '[[signals]]\nname = "ecg_mv"\nunit = "mV"\nlow = -5.0\nhigh = 5.0\n'
        "sample_period_s = 0.0027778\nflatline_samples = 40\n"
    )
    registry = load_settings(config).registry()
    assert registry["ecg_mv"].unit == "mV"
    assert registry["ecg_mv"].flatline_samples == 40
    monkeypatch.setenv(
        "MONITOR_SIGNALS", json.dumps([{"name": "cvp", "unit": "mmHg", "low": -10, "high": 40}])
    )
    assert [s.name for s in load_settings().registry().registered] == ["cvp"]
    monkeypatch.setenv(
        "MONITOR_SIGNALS", json.dumps([{"name": "spo2", "unit": "%", "low": 0, "high": 100}])
    )
    with pytest.raises(SettingsError, match="built-in vital"):
        load_settings()
