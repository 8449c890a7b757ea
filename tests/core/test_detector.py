"""The detector: k-of-n raise, severe immediate raise, hysteresis clear, severity, overrides."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from monitor.core.alerts import AlertEvent
from monitor.core.detector import Detector, DetectorConfig
from monitor.core.rhythm import Beats

FEATURES = ("heart_rate", "spo2")

#: Episodes clear at once (no latching hold): the tables below test the raise and clear rules.
AT_ONCE = DetectorConfig(merge_samples=0)

#: The k-of-n and severe rules alone (the shift rule off), for the tables that test them.
KOFN = DetectorConfig(shift_sum=None, spike=None, variance_level=None, merge_samples=0)


def run(zs: list[float], config: DetectorConfig | None = None, vital: int = 0) -> list[str]:
    """Feed |z| values for one vital (the other stays at 0); return 'seq:state:severity'."""
    det = Detector(FEATURES, config or AT_ONCE, model_version="m1")
    out: list[str] = []
    for seq, value in enumerate(zs):
        z = np.zeros(2)
        z[vital] = value
        for e in det.update(
            "p1", z, float(seq), seq, np.array([80.0, 97.0]), np.array([70.0, 96.0])
        ):
            out.append(f"{e.seq}:{e.state}:{e.severity}")
    return out


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        ([5.0], []),
        ([5.0, 0.0, 0.0, 5.0], []),
        ([5.0, 5.0], ["1:raised:low"]),
        ([5.0, 0.0, 5.0], ["2:raised:low"]),
        ([-5.0, 4.5], ["1:raised:low"]),
        ([4.0, 4.0, 4.0], []),
        ([3.9] * 10, []),
        ([8.5], ["0:raised:high"]),
        ([-8.5], ["0:raised:high"]),
        ([8.0], []),
        ([7.0, 4.5], ["1:raised:medium"]),
        ([6.0, 6.0], ["1:raised:medium"]),
    ],
)
def test_raise_rules(zs: list[float], expected: list[str]) -> None:
    """k=2 of n=3 above 4 sigma raises; > 8 raises at once; severity from the peak |z|."""
    assert run(zs, KOFN) == expected


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        ([3.9] * 3, ["2:raised:low"]),
        ([-3.9] * 3, ["2:raised:low"]),
        ([3.9, 3.5, 3.2], ["2:raised:low"]),
        ([3.0, 3.0, 3.0], []),
        ([3.0, 3.0, 3.0, 3.1], ["3:raised:low"]),
        ([3.9, -3.9, 3.9, -3.9], []),
        ([3.9, 3.9, 0.0, 3.9, 0.0, 3.9], []),
        ([2.0] * 20, []),
        ([3.9] * 3 + [1.0] * 3 + [3.9] * 3, ["2:raised:low", "5:cleared:low", "8:raised:low"]),
    ],
)
def test_shift_rule(zs: list[float], expected: list[str]) -> None:
    """|sum of the last 3 signed z| > 9 raises a shift no single sample shows; signs cancel."""
    assert run(zs, DetectorConfig(variance_level=None, merge_samples=0)) == expected


def test_shift_rule_per_vital_and_off() -> None:
    """shift_sum is overridable per vital, and None turns the rule off."""
    zs = [3.9] * 3
    assert run(zs, DetectorConfig(shift_sum=None)) == []
    assert run(zs, DetectorConfig(shift_sum=12.0)) == []
    per = DetectorConfig(per_vital={"heart_rate": {"shift_sum": 11.0}})
    assert run(zs, per) == ["2:raised:low"]
    assert run([3.6] * 3, per) == []


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        ([5, 5, 1, 1, 1], ["1:raised:low", "4:cleared:low"]),
        ([5, 5, 1, 1, 3, 1, 1, 1], ["1:raised:low", "7:cleared:low"]),
        ([5, 5, 1, 1], ["1:raised:low"]),
        ([5, 5, 2.0, 2.0, 2.0], ["1:raised:low"]),
        ([5, 5, 1, 1, 1, 5], ["1:raised:low", "4:cleared:low"]),
        ([5, 5, 1, 1, 1, 5, 5], ["1:raised:low", "4:cleared:low", "6:raised:low"]),
        ([9, 1, 1, 1], ["0:raised:high", "3:cleared:high"]),
    ],
)
def test_hysteresis_clear(zs: list[float], expected: list[str]) -> None:
    """A raised alert clears after 3 consecutive |z| < 2; a fresh episode needs k new hits."""
    assert run(zs) == expected


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        ([5, 5, 7], ["1:raised:low", "2:escalated:medium"]),
        ([5, 5, 9, 9], ["1:raised:low", "2:escalated:high"]),
        ([5, 5, 6.5, 9, 5], ["1:raised:low", "2:escalated:medium", "3:escalated:high"]),
        ([9, 5, 1, 1, 1], ["0:raised:high", "4:cleared:high"]),
    ],
)
def test_severity_escalates_never_drops_while_raised(zs: list[float], expected: list[str]) -> None:
    """Severity rises with a larger |z| (an escalated event) and never falls until cleared."""
    assert run(zs) == expected


def test_per_vital_override() -> None:
    """A per-vital override applies to that vital only; other vitals keep the defaults."""
    config = DetectorConfig(
        per_vital={"spo2": {"threshold": 2.0, "k": 1, "n": 1, "clear_below": 1.0}}
    )
    assert run([2.5], config, vital=1) == ["0:raised:low"]
    assert run([2.5, 2.5], config, vital=0) == []


def test_event_fields() -> None:
    """A raised event carries patient, vital, sample, values, z, threshold and model version."""
    det = Detector(FEATURES, DetectorConfig(), model_version="v7")
    events = det.update(
        "p9", np.array([0.0, 9.5]), 123.5, 42, np.array([80.0, 88.0]), np.array([79.0, 97.5])
    )
    assert len(events) == 1
    assert events[0] == AlertEvent(
        kind="physiological",
        patient_id="p9",
        vital="spo2",
        state="raised",
        severity="high",
        t=123.5,
        seq=42,
        actual=88.0,
        predicted=97.5,
        z=9.5,
        threshold=4.0,
        model_version="v7",
        reason="severe",
    )


def test_patients_are_independent_and_forget_drops_state() -> None:
    """State is per patient; forget returns the raised vitals and resets the patient."""
    det = Detector(FEATURES, DetectorConfig())
    hi, lo = np.array([5.0, 9.0]), np.zeros(2)
    vals = np.zeros(2)
    det.update("a", hi, 0.0, 0, vals, vals)
    assert det.update("b", hi, 0.0, 0, vals, vals)[0].vital == "spo2"
    states = [(e.vital, e.state) for e in det.update("a", hi, 1.0, 1, vals, vals)]
    assert states == [("heart_rate", "raised")]
    assert det.active("a") == ["heart_rate", "spo2"]
    assert det.active("b") == ["spo2"]
    assert det.forget("a") == ["heart_rate", "spo2"]
    assert det.active("a") == []
    assert det.forget("a") == []
    assert det.update("a", lo, 2.0, 2, vals, vals) == []
    assert len(det) == 2


def test_non_finite_z_never_raises() -> None:
    """A NaN residual is neither an exceedance nor a calm sample."""
    assert run([float("nan")] * 5) == []
    assert run([5, 5, float("nan"), 1, 1, 1]) == ["1:raised:low", "5:cleared:low"]


@pytest.mark.parametrize(
    ("settings", "match"),
    [
        ({"k": 4, "n": 3}, "k \\(4\\) must not exceed n"),
        ({"threshold": 9.0}, "clear_below <= threshold < severe"),
        ({"clear_below": 5.0}, "clear_below <= threshold < severe"),
        ({"per_vital": {"Glucose!": {"k": 1}}}, "unknown vital"),
        ({"per_vital": {"spo2": {"k": 5}}}, "spo2: k"),
        ({"n": 17}, "less than or equal to 16"),
        ({"bogus": 1}, "Extra inputs"),
    ],
)
def test_invalid_config_is_refused(settings: dict[str, object], match: str) -> None:
    """Inconsistent thresholds or unknown names fail validation with a clear message."""
    with pytest.raises(ValidationError, match=match):
        DetectorConfig.model_validate(settings)


@pytest.mark.parametrize(
    ("zs", "rule"),
    [
        ([9.0], "severe"),
        ([6.0], "spike"),
        ([5.0, 5.0], "k_of_n"),
        ([3.9, 3.5, 3.2], "shift"),
        ([3.0, -3.0] * 6, "variance"),
    ],
)
def test_events_name_the_rule_that_raised_the_episode(zs: list[float], rule: str) -> None:
    """reason is the raising rule, on the raised event and on the episode's cleared event
    (which goes out once the 3 calm samples and the 30-sample latching hold have passed)."""
    det = Detector(FEATURES, DetectorConfig())
    events = []
    for seq, value in enumerate([*zs, *[0.0] * 33]):
        z = np.array([value, 0.0])
        events += det.update("p1", z, float(seq), seq, np.zeros(2), np.zeros(2))
    assert [(e.state, e.reason) for e in events] == [("raised", rule), ("cleared", rule)]


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        ([5.4], []),
        ([5.6], ["0:raised:low"]),
        ([-7.0], ["0:raised:medium"]),
        ([8.5], ["0:raised:high"]),
    ],
)
def test_spike_rule(zs: list[float], expected: list[str]) -> None:
    """One |z| above spike (5.5) raises at once, with the severity of its size."""
    assert run(zs, DetectorConfig(shift_sum=None, variance_level=None)) == expected
    assert run(zs, DetectorConfig(shift_sum=None, variance_level=None, spike=None)) == [
        e for e in expected if e.endswith("high")
    ]


def test_variance_rule_sees_sustained_residuals_that_no_other_rule_sees() -> None:
    """Alternating 3-sigma residuals: no two above 4, sums cancel; their mean square rises.

    With weight 0.015 the mean of z squared after n samples is 1 + (9 - 1)(1 - 0.985**n):
    1.69 after 6, 1.80 (just above 1.8) after 7, the sample of index 6.
    """
    zs = [3.0, -3.0] * 10
    assert run(zs, DetectorConfig(variance_level=None)) == []
    assert run(zs) == ["6:raised:low"]
    # Noise-like residuals keep it near 1.
    rng = np.random.default_rng(3)
    assert run(rng.standard_normal(5000).tolist()) == []


def test_variance_rule_per_vital_and_off() -> None:
    """variance_level is overridable per vital, and None turns the rule off."""
    zs = [3.0, -3.0] * 10
    per = DetectorConfig(per_vital={"heart_rate": {"variance_level": 5.0}})
    assert run(zs, per) == []
    assert run(zs, per, vital=1) == ["6:raised:low"]


def test_a_null_in_a_vital_s_override_turns_that_rule_off_for_that_vital_only() -> None:
    """`{"heart_rate": {"spike": null}}`: a single 7-sigma heart-rate sample raises
    nothing (under `severe`, one sample of `k_of_n`), the same sample on SpO2 still raises
    at once; left out, a setting is the global one; a null for a setting that is no rule
    (`threshold`) is refused, naming it."""
    config = DetectorConfig(per_vital={"heart_rate": {"spike": None}, "spo2": {"k": 2}})
    assert config.resolve("heart_rate").spike is None
    assert config.resolve("spo2").spike == DetectorConfig().spike
    assert run([0.0, 7.0, 0.0, 0.0], config) == []
    assert run([0.0, 7.0, 0.0, 0.0], config, vital=1) == ["1:raised:medium"]
    assert run([0.0, 7.0, 0.0, 0.0], DetectorConfig()) == ["1:raised:medium"]
    off = DetectorConfig(per_vital={"heart_rate": {"shift_sum": None, "variance_level": None}})
    assert run([3.9] * 3, DetectorConfig(per_vital={"heart_rate": {"shift_sum": 11.0}})) != []
    assert run([3.9] * 3, off) == []
    with pytest.raises(ValueError, match="threshold: null turns off only"):
        DetectorConfig(per_vital={"spo2": {"threshold": None}})


@pytest.mark.parametrize("merge", [0, 5, 30])
def test_update_many_equals_update_row_by_row(merge: int) -> None:
    """A batch with repeated patients and new ones gives exactly the row-by-row events."""
    rng = np.random.default_rng(11)
    rows = 3000
    patients = [f"p{int(i)}" for i in rng.integers(0, 40, rows)]
    z = rng.standard_normal((rows, 2)) * 2.2
    z[rng.random(rows) < 0.01] *= 4.0
    actual = rng.standard_normal((rows, 2))
    predicted = rng.standard_normal((rows, 2))
    seqs = list(range(rows))
    ts = [float(s) for s in seqs]

    one = Detector(FEATURES, DetectorConfig(merge_samples=merge))
    batched = Detector(FEATURES, DetectorConfig(merge_samples=merge))
    expected: list[AlertEvent] = []
    got: list[AlertEvent] = []
    for chunk, lo in enumerate(range(0, rows, 257)):
        hi = min(lo + 257, rows)
        for r in range(lo, hi):
            expected += one.update(patients[r], z[r], ts[r], seqs[r], actual[r], predicted[r])
        got += batched.update_many(
            patients[lo:hi], z[lo:hi], ts[lo:hi], seqs[lo:hi], actual[lo:hi], predicted[lo:hi]
        )
        if chunk == 4:  # an eviction in the middle frees a slot that a new patient reuses
            assert one.forget("p3") == batched.forget("p3")
            patients = [p if p != "p5" or i < hi else "p_new" for i, p in enumerate(patients)]
    assert len(expected) > 30
    assert {e.reason for e in expected} >= {"k_of_n", "spike", "variance"}
    assert [e.model_dump() for e in got] == [e.model_dump() for e in expected]


#: The k-of-n rule alone with a hold of 5 samples: short tables for the episode policy.
HOLD5 = DetectorConfig(shift_sum=None, spike=None, variance_level=None, merge_samples=5)


@pytest.mark.parametrize(
    ("zs", "expected"),
    [
        # Clear condition at sample 4 (3 calm), then 5 more calm samples: cleared at 9.
        ([5, 5, 1, 1, 1, 0, 0, 0, 0, 0, 0], ["1:raised:low", "9:cleared:low"]),
        # Within the hold: a new raise condition continues the same episode, no events.
        ([5, 5, 1, 1, 1, 0, 5, 5, 1, 1, 1], ["1:raised:low"]),
        # ... and the episode clears only after a calm hold that follows its last raise.
        ([5, 5, 1, 1, 1, 0, 5, 5, *[0] * 8], ["1:raised:low", "15:cleared:low"]),
        # A larger value in the continued episode escalates it (severity never falls).
        ([5, 5, 1, 1, 1, 9], ["1:raised:low", "5:escalated:high"]),
        # Calm longer than the hold: cleared, then a new episode.
        ([5, 5, 1, 1, 1, *[0] * 5, 5, 5], ["1:raised:low", "9:cleared:low", "11:raised:low"]),
        # One exceedance within the hold is no raise condition (k = 2): it does not extend it.
        ([5, 5, 1, 1, 1, 5, 0, 0, 0, 0], ["1:raised:low", "9:cleared:low"]),
    ],
)
def test_episode_latches_and_merges_nearby_raises(zs: list[float], expected: list[str]) -> None:
    """After the clear condition an alert stays latched for merge_samples; a raise condition
    in that hold continues the episode (no cleared/raised pair), a calm hold clears it."""
    assert run(zs, HOLD5) == expected


def test_episode_hold_keeps_vital_active_and_forget_reports_it() -> None:
    """While latched the vital is still active (forget lists it: the shell can close it)."""
    det = Detector(FEATURES, HOLD5)
    vals = np.zeros(2)
    for seq, value in enumerate([5.0, 5.0, 1.0, 1.0, 1.0]):
        det.update("p1", np.array([value, 0.0]), float(seq), seq, vals, vals)
    assert det.active("p1") == ["heart_rate"]
    assert det.forget("p1") == ["heart_rate"]


def test_episode_merge_per_vital_override() -> None:
    """merge_samples is overridable per vital."""
    config = DetectorConfig(
        shift_sum=None,
        spike=None,
        variance_level=None,
        merge_samples=0,
        per_vital={"spo2": {"merge_samples": 5}},
    )
    zs = [5, 5, 1, 1, 1, 0, 5, 5]
    assert run(zs, config, vital=0) == ["1:raised:low", "4:cleared:low", "7:raised:low"]
    assert run(zs, config, vital=1) == ["1:raised:low"]


def test_the_latch_lasts_merge_min_s_of_a_fast_models_samples() -> None:
    """At 250 Hz the 10-sample hold is 40 ms: `merge_min_s` (2 s) makes it 500 samples, so
    two raises 1 s apart are one episode; a 1 Hz model keeps its 10 samples (10 s), and
    `merge_min_s` 0 or no period leaves samples only."""
    zs = [5.0, 5.0, *[0.0] * 250, 5.0, 5.0, *[0.0] * 600]

    def states(config: DetectorConfig, period_s: float) -> list[str]:
        det = Detector(FEATURES, config, period_s=period_s)
        out = []
        for seq, value in enumerate(zs):
            z = np.array([value, 0.0])
            out += [f"{e.seq}:{e.state}" for e in det.update("p", z, seq * period_s, seq, z, z)]
        return out

    rules = DetectorConfig(shift_sum=None, spike=None, variance_level=None)
    assert states(rules, 0.004) == ["1:raised", "756:cleared"]
    two = ["1:raised", "14:cleared", "253:raised", "266:cleared"]
    assert states(rules, 1.0) == two
    assert states(rules, 0.0) == two
    assert states(rules.model_copy(update={"merge_min_s": 0.0}), 0.004) == two


def test_asystole_raises_high_whatever_z_holds_while_it_lasts_and_escalates_an_episode() -> None:
    """On a beat waveform (`rhythm`), the rhythm's asystole flag raises `asystole` at high
    severity with z at 0, keeps the episode open while it is flagged (z calm throughout),
    and clears after the usual 3 calm samples and hold (5) once it is not; an open
    `premature` episode escalates to high, named `asystole`, at the first flag. A vital
    that is not a beat waveform ignores the flag."""
    config = DetectorConfig(merge_samples=5, merge_min_s=0.0)
    flags = [False] * 3 + [True] * 40 + [False] * 10

    def states(rhythm: tuple[str, ...], early_at: int | None = None) -> list[str]:
        det = Detector(FEATURES, config, rhythm=rhythm)
        out = []
        for seq, flag in enumerate(flags):
            z = np.zeros((1, 2))
            silent = np.array([[flag, False]])
            early = np.array([[seq == early_at, False]])
            beats = Beats(early if early_at is not None else None, silent if flag else None)
            events = det.update_many(["p"], z, [float(seq)], [seq], z, z, beats=beats)
            out += [f"{e.seq}:{e.state}:{e.severity}:{e.reason}" for e in events]
        return out

    assert states(("heart_rate",)) == ["3:raised:high:asystole", "50:cleared:high:asystole"]
    assert states(("heart_rate",), early_at=1) == [
        "1:raised:low:premature",
        "3:escalated:high:asystole",
        "50:cleared:high:asystole",
    ]
    assert states(()) == []
