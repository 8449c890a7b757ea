"""Lost vitals (monitor/core/lost.py): a vital that stops arriving while the others go on."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.alerts import AlertEvent
from monitor.core.lost import LostVitals
from monitor.core.slots import SlotMap
from monitor.core.technical import TechnicalAlarms

FEATURES = ("heart_rate", "spo2", "bp_sys")
NAN = float("nan")

Row = tuple[str, float, tuple[float, float, float]]


def _lost(patients: SlotMap | None = None) -> LostVitals:
    return LostVitals(FEATURES, intervals=4.0, min_silence_s=8.0, patients=patients)


def _run(
    lost: LostVitals,
    alarms: TechnicalAlarms,
    rows: list[Row],
    divisors: list[np.ndarray] | None = None,
) -> list[AlertEvent]:
    """Feed `rows` (patient, t, values) as one batch; each row's z divisors go to
    `divisors`."""
    ids = [pid for pid, _, _ in rows]
    t = [at for _, at, _ in rows]
    actual = np.array([values for _, _, values in rows], dtype=np.float64)
    found, divisor = lost.find(lost.patients.assign(ids), actual, t)
    assert divisor.shape == actual.shape
    if divisors is not None:
        divisors.extend(divisor)
    return lost.events(alarms, ids, t, actual, found)


def _changes(events: list[AlertEvent]) -> list[tuple[str | None, str | None, str, float]]:
    return [(e.patient_id, e.vital, e.state, e.t) for e in events]


def _stream(seconds: int, spo2_until: int, bp_every: int, bp_until: int) -> list[Row]:
    """Heart rate every second; SpO2 every second up to `spo2_until`; a cuff pressure every
    `bp_every` s up to `bp_until`."""
    rows: list[Row] = []
    for s in range(seconds):
        spo2 = 97.0 if s < spo2_until else NAN
        bp = 120.0 if s % bp_every == 0 and s < bp_until else NAN
        rows.append(("p", float(s), (70.0, spo2, bp)))
    return rows


def test_a_vital_that_stops_is_lost_after_its_own_intervals_and_clears_when_it_returns() -> None:
    """SpO2 every second stops at 100 s while the heart rate goes on: lost at the first
    sample more than 8 s (the staleness floor over 4 x 1 s) after its last value, once, and
    cleared by its next value. The cuff pressure every 30 s, which goes on, never is."""
    lost, alarms = _lost(), TechnicalAlarms("m", 10)
    rows = _stream(400, spo2_until=100, bp_every=30, bp_until=400)
    rows[300] = ("p", 300.0, (70.0, 96.0, 120.0))
    events = [e for row in rows for e in _run(lost, alarms, [row])]
    assert _changes(events) == [
        ("p", "spo2", "raised", 108.0),  # last value at 99 s: 9 s > 8 s
        ("p", "spo2", "cleared", 300.0),
        ("p", "spo2", "raised", 309.0),
    ]
    assert alarms.lost_open == {"p": 1}


def test_a_slow_vital_is_judged_on_its_own_rate() -> None:
    """A cuff pressure every 60 s that stops: lost 4 x 60 s after its last reading, not
    after the staleness limit; a vital seen once, and one never sent, are never judged."""
    lost, alarms = _lost(), TechnicalAlarms("m", 10)
    rows = _stream(900, spo2_until=1, bp_every=60, bp_until=300)  # cuff at 0, 60, ..., 240
    events = [e for row in rows for e in _run(lost, alarms, [row])]
    # SpO2 was seen once (t 0): no interval known, never judged.
    assert _changes(events) == [("p", "bp_sys", "raised", 481.0)]  # 240 + 240 s, then 1 s more

    only_hr = [("q", float(s), (70.0, NAN, NAN)) for s in range(600)]
    assert [e for row in only_hr for e in _run(lost, alarms, [row])] == []


def test_an_outage_is_not_taken_for_the_vitals_rate_but_a_slower_schedule_is() -> None:
    """After the whole patient was silent for 100 s, SpO2 stopping right after is lost 9 s
    later, not 4 x 100 s later; and a device back from that outage with its SpO2 one sample
    after its heart rate raises nothing. A cuff going from every 60 s to every 400 s is lost
    and back twice, then its new rate is learned."""
    lost, alarms = _lost(), TechnicalAlarms("m", 10)
    rows: list[Row] = [("p", float(s), (70.0, 97.0, NAN)) for s in range(20)]
    rows += [("p", 119.0, (70.0, NAN, NAN)), ("p", 119.5, (NAN, 97.0, NAN))]  # after 100 s
    rows += [("p", 120.0, (70.0, 97.0, NAN))]
    rows += [("p", float(s), (70.0, NAN, NAN)) for s in range(121, 300)]
    events = [e for row in rows for e in _run(lost, alarms, [row])]
    assert _changes(events) == [("p", "spo2", "raised", 129.0)]

    lost, alarms = _lost(), TechnicalAlarms("m", 10)
    cuff = {*range(0, 300, 60), *range(640, 2400, 400)}
    rows = [("q", float(s), (70.0, NAN, 120.0 if s in cuff else NAN)) for s in range(2400)]
    events = [e for row in rows for e in _run(lost, alarms, [row])]
    assert _changes(events) == [
        ("q", "bp_sys", "raised", 481.0),  # 240 s + 4 x 60 s, then 1 s
        ("q", "bp_sys", "cleared", 640.0),  # 400 s: over the limit once, not learned
        ("q", "bp_sys", "raised", 881.0),
        ("q", "bp_sys", "cleared", 1040.0),  # over it twice in a row: the new rate
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_batches_of_any_size_give_the_events_of_one_row_at_a_time(seed: int) -> None:
    """Three patients interleaved, vitals dropping in and out; batches of random sizes
    (a patient many times in one) decide what one row at a time decides."""
    rng = np.random.default_rng(seed)
    rows: list[Row] = []
    for s in range(600):
        for pid in ("a", "b", "c"):
            if rng.random() < 0.2:
                continue
            spo2 = 97.0 if (s // 50) % 3 or pid == "c" else NAN  # off for 50 s, on for 100
            bp = 120.0 if s % (20 if pid == "a" else 45) == 0 and s < 400 else NAN
            rows.append((pid, float(s), (70.0, spo2, bp)))
    one = _lost()
    alarms_one = TechnicalAlarms("m", 10)
    wide_one: list[np.ndarray] = []
    expected = [e for row in rows for e in _run(one, alarms_one, [row], wide_one)]
    assert {e.state for e in expected} == {"raised", "cleared"}
    assert max(float(d.max()) for d in wide_one) == 5.0  # SpO2 back after 50 s
    batched, alarms_b = _lost(), TechnicalAlarms("m", 10)
    got: list[AlertEvent] = []
    wide_b: list[np.ndarray] = []
    at = 0
    while at < len(rows):
        size = int(rng.integers(1, 300))
        got += _run(batched, alarms_b, rows[at : at + size], wide_b)
        at += size
    assert _changes(got) == _changes(expected)
    np.testing.assert_array_equal(np.array(wide_b), np.array(wide_one))


def test_a_round_trip_continues_as_if_uninterrupted_and_a_reused_slot_starts_fresh() -> None:
    """`export_state` then `import_state` into a new table gives the same later events; a
    patient given a freed slot does not inherit its previous owner's history."""
    rows = _stream(400, spo2_until=150, bp_every=30, bp_until=200)
    whole, alarms = _lost(), TechnicalAlarms("m", 10)
    expected = [e for row in rows for e in _run(whole, alarms, [row])]
    first, alarms_first = _lost(), TechnicalAlarms("m", 10)
    for row in rows[:140]:
        _run(first, alarms_first, [row])
    ids, arrays = first.export_state()
    patients = SlotMap()
    patients.assign(["other", *ids])
    restored = _lost(patients)
    restored.import_state(ids, arrays)
    alarms_after = TechnicalAlarms("m", 10)
    later = [e for row in rows[140:] for e in _run(restored, alarms_after, [row])]
    assert (
        _changes(later)
        == _changes(expected)
        == [
            ("p", "spo2", "raised", 158.0),
            ("p", "bp_sys", "raised", 301.0),  # last cuff at 180 s, 4 x 30 s later, then 1 s
        ]
    )

    table = SlotMap()
    reused = _lost(table)
    alarms = TechnicalAlarms("m", 10)
    for s in range(20):
        _run(reused, alarms, [("old", float(s), (70.0, 97.0, NAN))])
    table.release("old")
    fresh = [("new", float(s), (70.0, NAN, NAN)) for s in range(20, 60)]
    assert [e for row in fresh for e in _run(reused, alarms, [row])] == []


def test_import_refuses_what_does_not_fit_and_changes_nothing() -> None:
    """Unknown patients, wrong shapes, negative intervals: ValueError, state unchanged."""
    patients = SlotMap()
    patients.assign(["p"])
    lost = _lost(patients)
    good = {name: np.full((1, 3), 1.0) for name in ("seen", "last", "before", "lapsed", "missed")}
    with pytest.raises(ValueError, match="does not hold"):
        lost.import_state(["q"], good)
    with pytest.raises(ValueError, match="shape"):
        lost.import_state(["p"], {**good, "last": np.ones((1, 2))})
    with pytest.raises(ValueError, match="out of range"):
        lost.import_state(["p"], {**good, "before": np.full((1, 3), -1.0)})
    with pytest.raises(ValueError, match="out of range"):
        lost.import_state(["p"], {**good, "lapsed": np.full((1, 3), 0.5)})
    assert lost.export_state()[0] == []
    with pytest.raises(ValueError, match="intervals > 1"):
        LostVitals(FEATURES, intervals=1.0, min_silence_s=8.0)


def test_a_batch_without_an_outage_is_decided_in_one_pass(monkeypatch: pytest.MonkeyPatch) -> None:
    """Patients many times in one batch, a cuff pressure on its schedule, a saturation that
    stops: decided in one pass (no round per row), as one row at a time decides, the z
    divisor of the first value back too; a batch where a vital comes back from a silence
    over its limit takes the rounds."""
    rows: list[Row] = []
    for s in range(900):
        for pid, phase in (("a", 0), ("b", 7), ("c", 19)):
            spo2 = NAN if pid == "b" and 400 <= s < 700 else 97.0
            bp = 120.0 if (s + phase) % 60 == 0 else NAN
            rows.append((pid, float(s), (70.0, spo2, bp)))
    one, alarms_one = _lost(), TechnicalAlarms("m", 10)
    wide_one: list[np.ndarray] = []
    expected = [e for row in rows for e in _run(one, alarms_one, [row], wide_one)]
    assert _changes(expected) == [("b", "spo2", "raised", 408.0), ("b", "spo2", "cleared", 700.0)]
    batched, alarms_b = _lost(), TechnicalAlarms("m", 10)
    rounds: list[int] = []
    step = batched._step  # counted, not changed

    def counted(*args: object) -> object:
        rounds.append(1)
        return step(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(batched, "_step", counted)
    got: list[AlertEvent] = []
    wide_b: list[np.ndarray] = []
    batches = [rows[i : i + 30] for i in range(0, len(rows), 30)]  # 10 s each
    for k, batch in enumerate(batches):
        before = len(rounds)
        got += _run(batched, alarms_b, batch, wide_b)
        back = any(pid == "b" and at == 700.0 for pid, at, _ in batch)
        assert (len(rounds) > before) == back, k  # only SpO2's return takes the rounds
    assert _changes(got) == _changes(expected)
    # Only SpO2's first value back (b's row at 700 s) starts a settling.
    wide = np.array(wide_b)
    assert wide[700 * 3 + 1, 1] == 5.0
    assert np.count_nonzero(wide != 1.0) == 1
    np.testing.assert_array_equal(wide, np.array(wide_one))


def test_a_vital_back_from_being_lost_starts_a_settling() -> None:
    """SpO2 every second, lost from 100 s, back at 200 s: its first value's z divisor is
    the square root of its silence in its own intervals (101, so the cap 5), its next
    values' 1 (the settling is `monitor.core.settle`'s); the heart rate, which went on, and
    SpO2 back after a silence of the whole patient (the sample's gap widens it) or after two
    missing samples (never lost) keep 1."""
    lost, alarms = _lost(), TechnicalAlarms("m", 10)
    rows = [("p", float(s), (70.0, 97.0 if not 100 <= s < 200 else NAN, NAN)) for s in range(260)]
    wide: list[np.ndarray] = []
    for row in rows:
        _run(lost, alarms, [row], wide)
    spo2 = np.array([float(d[1]) for d in wide])
    assert np.all(np.array([float(d[0]) for d in wide]) == 1.0)
    assert np.all(spo2[:200] == 1.0)
    assert spo2[200] == 5.0
    assert np.all(spo2[201:] == 1.0)

    # A cap of 2 and a short loss: sqrt(12 s / 1 s) over the cap.
    capped = LostVitals(FEATURES, intervals=4.0, min_silence_s=8.0, max_widen=2.0)
    rows = [("q", float(s), (70.0, 97.0 if not 20 <= s < 31 else NAN, NAN)) for s in range(40)]
    wide = []
    for row in rows:
        _run(capped, alarms, [row], wide)
    assert float(wide[31][1]) == 2.0

    quiet, alarms = _lost(), TechnicalAlarms("m", 10)
    rows = [("r", float(s), (70.0, 97.0, NAN)) for s in range(20)]
    rows += [("r", 80.0 + s, (70.0, 97.0, NAN)) for s in range(30)]  # whole patient silent
    rows[22:24] = [("r", 82.0, (70.0, NAN, NAN)), ("r", 83.0, (70.0, NAN, NAN))]
    wide = []
    events = [e for row in rows for e in _run(quiet, alarms, [row], wide)]
    assert events == []
    assert np.all(np.array(wide) == 1.0)


def test_a_snapshot_from_before_the_settling_component_loads() -> None:
    """A lost-vital state exported with the ``widen`` and ``settled`` rows it had before
    the settling moved to `monitor.core.settle` loads (those rows are not read) and goes on
    as the state without them."""
    rows = [("p", float(s), (70.0, 97.0 if not 100 <= s < 200 else NAN, NAN)) for s in range(260)]
    whole = _lost()
    expected: list[np.ndarray] = []
    for row in rows:
        _run(whole, TechnicalAlarms("m", 10), [row], expected)
    first = _lost()
    for row in rows[:150]:
        _run(first, TechnicalAlarms("m", 10), [row])
    ids, arrays = first.export_state()
    assert set(arrays) == {"seen", "last", "before", "lapsed", "missed"}
    old = {**arrays, "widen": np.full((1, 3), 5.0), "settled": np.full((1, 3), 4.0)}
    patients = SlotMap()
    patients.assign(["other", *ids])
    restored = _lost(patients)
    restored.import_state(ids, old)
    later: list[np.ndarray] = []
    for row in rows[150:]:
        _run(restored, TechnicalAlarms("m", 10), [row], later)
    np.testing.assert_array_equal(np.array(later), np.array(expected[150:]))
    with pytest.raises(ValueError, match="out of range"):
        restored.import_state(ids, {**arrays, "lapsed": np.full((1, 3), 0.5)})
