"""The mixed-rates scenario: vitals at their own rates, wearables with a subset; and
`probe-off`, which stops one of them for a while."""

from __future__ import annotations

import json

import numpy as np
import pytest

from simulators.encode import MessageEncoder
from simulators.scenarios import WEARABLE_VITALS, build
from simulators.signals import draw_patients, seed_profile


def test_slow_vitals_are_sent_at_their_period_and_wearables_send_a_subset() -> None:
    """Heart rate and SpO2 go in every sample; blood pressure (both values together) and
    temperature go every few minutes; a wearable patient sends only its two vitals; events
    fall only on vitals a patient sends every sample."""
    profiles = draw_patients(40, seed=3)
    sim = build("mixed-rates", profiles, seed=3, rate=1.0)
    names = sim.names
    wearables = 0
    for i in range(len(profiles)):
        sent = sim.sent(i, 0, 3600)
        assert sent is not None
        column = dict(zip(names, sent.T, strict=True))
        assert column["heart_rate"].all()
        assert column["spo2"].all()
        np.testing.assert_array_equal(column["bp_sys"], column["bp_dia"])
        if not column["resp_rate"].any():
            wearables += 1
            assert not column["bp_sys"].any()
            assert not column["temperature"].any()
            dense = set(WEARABLE_VITALS)
        else:
            assert column["resp_rate"].all()
            gaps = np.diff(np.flatnonzero(column["bp_sys"]))
            assert len(set(gaps.tolist())) == 1
            assert 300 <= gaps[0] <= 900
            dense = {"heart_rate", "spo2", "resp_rate"}
        for event in sim.events(i, 3600):
            assert event.vital is None or names[event.vital] in dense
    assert 0 < wearables < len(profiles)


def test_plain_scenarios_send_every_vital() -> None:
    """Other scenarios are unchanged: every vital in every sample."""
    sim = build("mixed", draw_patients(2, seed=1), seed=1, rate=1.0)
    assert sim.sent(0, 0, 100) is None


def test_encoder_writes_only_the_sent_vitals() -> None:
    """A partial sample lists only its vitals, in single and block messages."""
    enc = MessageEncoder("p1", ("heart_rate", "spo2", "bp_sys"))
    single = json.loads(enc.single(1.0, 1, [80.0, 97.0, 120.0], [True, True, False]))
    assert single["vitals"] == {"heart_rate": 80.0, "spo2": 97.0}
    block = json.loads(
        enc.block([1.0, 2.0], [1, 2], [[80.0, 97.0, 120.0]] * 2, [[True, False, True]] * 2)
    )
    assert [s["vitals"] for s in block["samples"]] == [{"heart_rate": 80.0, "bp_sys": 120.0}] * 2
    full = json.loads(enc.single(1.0, 1, [80.0, 97.0, 120.0], [True, True, True]))
    assert set(full["vitals"]) == {"heart_rate", "spo2", "bp_sys"}


def test_probe_off_stops_one_vital_exactly_where_labelled() -> None:
    """`probe-off`: on about half the patients, one vital they send every sample stops for
    30 to 300 s at a time (labelled with that vital), as mixed-rates otherwise sends;
    values and whole samples are as in `stable`, however the range is cut."""
    profiles = draw_patients(20, seed=4)
    sim = build("probe-off", profiles, seed=4, rate=1.0)
    plain = build("mixed-rates", profiles, seed=4, rate=1.0)
    names = sim.names
    affected = 0
    for i in range(len(profiles)):
        labels = sim.labels(i, 0, 7200)
        affected += bool(labels)
        sent, schedule = sim.sent(i, 0, 7200), plain.sent(i, 0, 7200)
        assert sent is not None
        assert schedule is not None
        expected = schedule.copy()
        for lab in labels:
            assert lab.kind == "probe_off"
            assert lab.vital is not None
            assert lab.magnitude_sigma == 0.0
            assert 30 <= lab.end_seq - lab.start_seq + 1 <= 301
            j = names.index(lab.vital)
            assert schedule[:, j].all()  # a vital sent every sample
            expected[lab.start_seq : lab.end_seq + 1, j] = False
        np.testing.assert_array_equal(sent, expected)
        _, values, present = sim.samples(i, 0, 7200)
        assert present.all()
        np.testing.assert_array_equal(values, sim.stable(i, 0, 7200))
        cut = np.concatenate([sim.sent(i, a, b) for a, b in ((0, 1000), (1000, 7200))])  # type: ignore[misc]
        np.testing.assert_array_equal(cut, sent)
    assert 0 < affected < len(profiles)


def test_probe_off_needs_a_second_vital_sent_every_sample() -> None:
    """A profile of one vital cannot lose it and go on: refused with a clear error."""
    with pytest.raises(ValueError, match="needs two vitals sent every sample"):
        build("probe-off", [seed_profile("p0000")], 0, 1.0)
