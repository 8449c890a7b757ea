"""Raise rules as objects (monitor/core/rules.py): triggers, selection by settings, priority."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.detector import Detector, DetectorConfig
from monitor.core.rules import RAISE_RULES, RULES, Evidence, build_rules

FEATURES = ("heart_rate", "spo2")


def _evidence(
    z: list[float], hist: list[int], zsum: list[float], z2: list[float], threshold: float = 4.0
) -> Evidence:
    absz = np.abs(np.array([z]))
    return Evidence(
        absz=absz,
        over=absz > threshold,
        hist=np.array([hist], dtype=np.int64),
        zsum=np.array([zsum]),
        z2=np.array([z2]),
    )


def _vitals(config: DetectorConfig) -> list:
    return [config.resolve(name) for name in FEATURES]


def test_each_rule_triggers_on_its_own_evidence() -> None:
    """Per vital: severe above 8, spike above 5.5, k_of_n on 2 set bits of 3 when over,
    shift on |sum| above 9, variance on the mean of z squared above 1.8."""
    rules = {r.name: r for r in build_rules(_vitals(DetectorConfig()))}
    e = _evidence(z=[9.0, 4.5], hist=[0b001, 0b101], zsum=[9.5, -3.0], z2=[1.0, 2.0])
    assert rules["severe"].trigger(e).tolist() == [[True, False]]
    assert rules["spike"].trigger(e).tolist() == [[True, False]]
    assert rules["k_of_n"].trigger(e).tolist() == [[False, True]]
    assert rules["shift"].trigger(e).tolist() == [[True, False]]
    assert rules["variance"].trigger(e).tolist() == [[False, True]]


def test_settings_turn_rules_off_and_rules_come_by_priority() -> None:
    """A rule whose setting is None for every vital is left out; one off for a single vital
    never triggers there; the rest come asystole, severe, spike, k_of_n, shift, variance,
    premature, beat_shape."""
    assert [r.name for r in build_rules(_vitals(DetectorConfig()))] == [
        "asystole",
        "severe",
        "spike",
        "k_of_n",
        "shift",
        "variance",
        "premature",
        "beat_shape",
    ]
    off = DetectorConfig(
        spike=None,
        shift_sum=None,
        variance_level=None,
        premature=None,
        asystole_s=None,
        beat_shape=None,
    )
    assert [r.name for r in build_rules(_vitals(off))] == ["severe", "k_of_n"]
    one_off = DetectorConfig(spike=None, per_vital={"spo2": {"spike": 5.0}})
    spike = next(r for r in build_rules(_vitals(one_off)) if r.name == "spike")
    e = _evidence(z=[7.9, 7.9], hist=[1, 1], zsum=[0.0, 0.0], z2=[1.0, 1.0])
    assert spike.trigger(e).tolist() == [[False, True]]


@pytest.mark.parametrize(("name", "flag"), [("premature", "beats"), ("beat_shape", "misshapen")])
def test_beat_rules_are_on_only_for_the_detector_s_beat_waveforms(name: str, flag: str) -> None:
    """The detector keeps `premature` for the features the card marks as beat waveforms
    (`rhythm`) told by timing, `beat_shape` for those told by shape (`shaped`), and
    neither elsewhere; each triggers on its flag from the rhythm there (the premature
    beats, the misshapen ones), never on z nor on the other's flag."""
    assert name not in [r.name for r in Detector(FEATURES, DetectorConfig()).rules]
    shaped = ("spo2",) if name == "beat_shape" else ()
    det = Detector(FEATURES, DetectorConfig(), rhythm=("spo2",), shaped=shaped)
    names = [r.name for r in det.rules]
    assert ("premature" in names, "beat_shape" in names) == (not shaped, bool(shaped))
    rule = next(r for r in det.rules if r.name == name)
    e = _evidence(z=[9.0, 0.0], hist=[1, 0], zsum=[0.0, 0.0], z2=[1.0, 1.0])
    assert rule.trigger(e).tolist() == [[False, False]]
    other = "misshapen" if flag == "beats" else "beats"
    setattr(e, other, np.array([[True, True]]))
    assert rule.trigger(e).tolist() == [[False, False]]
    setattr(e, flag, np.array([[True, True]]))
    assert rule.trigger(e).tolist() == [[False, True]]


def test_a_beat_waveform_judged_neither_way_keeps_asystole_only() -> None:
    """A beat waveform in neither `timed` nor `shaped` (the card's `ectopy` "none": a pulse
    wave in an irregular rhythm) has no ectopy rule, and its asystole stays on."""
    det = Detector(FEATURES, DetectorConfig(), rhythm=("spo2",), shaped=(), timed=())
    assert [r.name for r in det.rules if r.name in ("premature", "beat_shape", "asystole")] == [
        "asystole"
    ]
    spo2 = det.thresholds[FEATURES.index("spo2")]
    assert (spo2.premature, spo2.beat_shape, spo2.asystole_s) == (None, None, 4.0)


def test_every_rule_has_a_stored_name() -> None:
    """Snapshots store a raise's rule as its index in RAISE_RULES: every rule has one."""
    assert sorted(kind.name for kind in RULES) == sorted(RAISE_RULES)
    assert len({kind.priority for kind in RULES}) == len(RULES)


def test_the_highest_priority_rule_names_the_raise() -> None:
    """A sample that meets severe, spike and k_of_n at once raises as 'severe'; one that
    meets spike and k_of_n as 'spike'."""
    for first, expected in ((9.0, "severe"), (6.0, "spike")):
        det = Detector(FEATURES, DetectorConfig(), model_version="m")
        a, p = np.zeros(2), np.zeros(2)
        assert det.update("p", np.array([4.5, 0.0]), 0.0, 0, a, p) == []
        events = det.update("p", np.array([first, 0.0]), 1.0, 1, a, p)
        assert [(e.state, e.reason) for e in events] == [("raised", expected)]
