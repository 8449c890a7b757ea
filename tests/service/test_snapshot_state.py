"""Round trips of each component's exported state: a restored copy behaves as the original.

Each test drives an original component, exports its state, imports it into a fresh one,
then feeds both the same next samples and compares every output.
"""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.detector import Detector, DetectorConfig
from monitor.core.scale import ResidualScale
from monitor.core.windows import WindowStore
from tests.support.ingest import push_one

F = 3
WINDOW = 6
FEATURES = ("heart_rate", "spo2", "resp_rate")


def _store(masked: bool = False) -> WindowStore:
    return WindowStore(
        WINDOW, F, max_patients=8, idle_ttl_s=100.0, max_gap_s=10.0, masked=masked, period_s=1.0
    )


def _feed(store: WindowStore, rng: np.random.Generator, steps: range, n_patients: int) -> list:
    out = []
    for step in steps:
        for p in range(n_patients):
            values = rng.normal(size=F)
            if store.masked and rng.random() < 0.3:
                values[rng.integers(F)] = np.nan
            r = push_one(store, f"p{p}", float(step), step, values, now=1000.0 + step)
            out.append((r.outcome, None if r.context is None else r.context.tolist()))
    return out


@pytest.mark.parametrize("masked", [False, True])
def test_window_store_round_trip_gives_the_same_next_contexts(masked: bool) -> None:
    """A store restored mid-stream (some patients warming up, some full, windows moved on
    past the row's slack) gives the same outcomes and contexts as the uninterrupted one."""
    rng = np.random.default_rng(1)
    original = _store(masked)
    _feed(original, rng, range(1, 30), 4)  # p0..p3 full, windows moved back at least once
    _feed(original, rng, range(30, 33), 6)  # p4, p5 warming up (3 samples)
    ids, arrays = original.export_state()
    restored = _store(masked)
    restored.import_state(ids, arrays)
    assert restored.patients() == original.patients()
    rng_a, rng_b = np.random.default_rng(2), np.random.default_rng(2)
    expected = _feed(original, rng_a, range(33, 60), 6)
    got = _feed(restored, rng_b, range(33, 60), 6)
    assert got == expected
    assert [o for o, _ in got[:6]] == ["ready"] * 4 + ["warming_up"] * 2


def test_window_store_round_trip_keeps_duplicates_late_and_staleness() -> None:
    """The restored bookkeeping still refuses a duplicate and a late sample, and `shift_s`
    moves the receive times so the time on disk is not counted as silence."""
    original = _store()
    for seq in range(1, 4):
        push_one(original, "a", float(seq), seq, np.ones(F), now=100.0 + seq)
    ids, arrays = original.export_state()
    restored = _store()
    restored.import_state(ids, arrays, shift_s=50.0)
    assert push_one(restored, "a", 3.0, 3, np.ones(F), now=200.0).outcome == "duplicate"
    assert push_one(restored, "a", 2.5, 2, np.ones(F), now=200.0).outcome == "late"
    assert restored.last_seen("a") == pytest.approx(153.0)
    assert restored.stale(160.0, 5.0) == ["a"]
    assert restored.stale(155.0, 5.0) == []


def test_window_store_round_trip_keeps_the_streams_rate() -> None:
    """A stream back for one sample after an outage: its rate (the shorter of its last two
    intervals, 1 s) survives the restart, so its signal-lost limit stays 5 s, not 5 x 50 s;
    a file without `rate_dt` (written before it) takes the last interval."""
    original = _store()
    for seq, t in enumerate([1.0, 2.0, 3.0, 53.0], start=1):
        push_one(original, "a", t, seq, np.ones(F), now=100.0 + t)
    ids, arrays = original.export_state()
    assert arrays["rate_dt"].tolist() == [1.0]
    assert arrays["last_dt"].tolist() == [50.0]
    restored = _store()
    restored.import_state(ids, arrays)
    assert restored.stale(159.0, 5.0) == ["a"]  # 6 s after its last sample (153 s)
    older = _store()
    older.import_state(ids, {k: v for k, v in arrays.items() if k != "rate_dt"})
    assert older.stale(159.0, 5.0) == []  # as before: stretched by the 50 s interval


@pytest.mark.parametrize("offset_s", [300.0, -300.0])
def test_window_store_round_trip_keeps_the_learned_clock(offset_s: float) -> None:
    """A device whose clock is 5 minutes off, learned and reported once before the restart,
    is not reported again, nor refused, after it: the learned offset is part of the state."""
    clock = {"max_future_skew_s": 5.0, "max_offset_s": 3600.0, "clock_alert_s": 60.0}
    original = WindowStore(WINDOW, F, max_patients=8, idle_ttl_s=100.0, max_gap_s=10.0, **clock)
    seen = [
        push_one(original, "a", 1000.0 + s + offset_s, s, np.ones(F), now=1000.0 + s)
        for s in range(1, 20)
    ]
    assert [r.clock for r in seen].count("offset") == 1
    ids, arrays = original.export_state()
    restored = WindowStore(WINDOW, F, max_patients=8, idle_ttl_s=100.0, max_gap_s=10.0, **clock)
    restored.import_state(ids, arrays)
    assert restored.clock_offset("a") == original.clock_offset("a")
    for s in range(20, 40):
        a = push_one(original, "a", 1000.0 + s + offset_s, s, np.ones(F), now=1000.0 + s)
        b = push_one(restored, "a", 1000.0 + s + offset_s, s, np.ones(F), now=1000.0 + s)
        assert (b.outcome, b.clock) == (a.outcome, a.clock)
        assert b.clock == ""
        assert b.outcome == "ready"


def test_window_store_import_refuses_wrong_shapes_and_changes_nothing() -> None:
    """An array of another window length is refused before any patient is admitted."""
    original = _store()
    push_one(original, "a", 1.0, 1, np.ones(F), now=1.0)
    ids, arrays = original.export_state()
    bad = dict(arrays, rows=np.zeros((1, WINDOW + 1, F), np.float32))
    restored = _store()
    with pytest.raises(ValueError, match="rows"):
        restored.import_state(ids, bad)
    assert len(restored) == 0


def test_scale_round_trip_gives_the_same_next_z() -> None:
    """A restored residual scale gives the same z (and so the same learnt state) as the
    uninterrupted one, for patients admitted at different times."""
    rng = np.random.default_rng(3)
    base = np.array([1.0, 2.0, 0.5])
    original = ResidualScale(base)
    ids = [f"p{i}" for i in range(5)]
    for step in range(40):
        pids = ids[: 2 + step // 10]
        original.z_batch(
            pids, rng.normal(size=(len(pids), WINDOW, F)), rng.normal(size=(len(pids), F))
        )
    exported_ids, arrays = original.export_state()
    restored = ResidualScale(base)
    restored.import_state(exported_ids, arrays)
    for _ in range(30):
        contexts = rng.normal(size=(5, WINDOW, F))
        residuals = rng.normal(scale=3.0, size=(5, F))
        np.testing.assert_array_equal(
            restored.z_batch(ids, contexts, residuals), original.z_batch(ids, contexts, residuals)
        )


def _z_stream(rng: np.random.Generator, rows: int) -> np.ndarray:
    z = rng.normal(size=(rows, F))
    spikes = rng.random(size=(rows, F)) < 0.08
    return np.where(spikes, rng.choice([-9.0, 5.0, 6.0, 4.5], size=(rows, F)), z)


def test_detector_round_trip_gives_the_same_next_events() -> None:
    """A detector restored with alerts raised, latched and calming gives the same events as
    the uninterrupted one over the following samples (including repeated patients)."""
    rng = np.random.default_rng(4)
    ids = [f"p{i}" for i in range(6)]
    original = Detector(FEATURES, DetectorConfig(), model_version="v1")
    for step in range(200):
        original.update_many(
            ids,
            _z_stream(rng, 6),
            [float(step)] * 6,
            [step] * 6,
            np.zeros((6, F)),
            np.zeros((6, F)),
        )
    assert any(original.active(p) for p in ids)  # some alert is open when the state is saved
    exported_ids, arrays = original.export_state()
    restored = Detector(FEATURES, DetectorConfig(), model_version="v1")
    restored.import_state(exported_ids, arrays)
    events_seen = 0
    for step in range(200, 400):
        pids = ids + ids[:2]  # a patient twice in a batch: rows applied in order
        z = _z_stream(rng, len(pids))
        args = (pids, z, [float(step)] * 8, [step] * 8, np.zeros((8, F)), np.zeros((8, F)))
        expected = original.update_many(*args)
        got = restored.update_many(*args)
        assert got == expected
        events_seen += len(expected)
    assert events_seen > 0


def test_detector_import_refuses_inconsistent_state() -> None:
    """A raised count that disagrees with the raised flags is refused; nothing is held."""
    original = Detector(FEATURES, DetectorConfig())
    original.update("a", np.zeros(F), 0.0, 0, np.zeros(F), np.zeros(F))
    ids, arrays = original.export_state()
    restored = Detector(FEATURES, DetectorConfig())
    with pytest.raises(ValueError, match="out of range"):
        restored.import_state(ids, dict(arrays, n_raised=np.array([2])))
    assert len(restored) == 0


def test_stuck_and_follow_imports_refuse_what_does_not_fit() -> None:
    """The stuck history is only for patients the shared table holds; a follow gain outside
    [1, max_gain] or a second copy of a followed patient is refused, nothing changed."""
    from monitor.core.follow import AlarmFollow
    from monitor.core.slots import SlotMap
    from monitor.core.stuck import StuckSensors

    table = SlotMap()
    stuck = StuckSensors(FEATURES, WINDOW, [5, 5, 5], masked=False, patients=table)
    with pytest.raises(ValueError, match="does not hold"):
        stuck.import_state(["nobody"], {"seq": np.zeros((1, F))})
    with pytest.raises(ValueError, match="shape"):
        stuck.import_state(["nobody"], {"seq": np.zeros((1, F + 1))})
    assert stuck.export_state()[0] == []
    follow = AlarmFollow(F, level=3.0, share=0.01, step=0.01, max_gain=4.0, patients=table)
    with pytest.raises(ValueError, match="out of range"):
        follow.import_state(["a"], {"log": np.full((1, F), 2.0)})  # e^2 > 4
    follow.import_state(["a"], {"log": np.full((1, F), 0.5)})
    np.testing.assert_allclose(follow.gain("a"), np.exp(0.5))
    with pytest.raises(ValueError, match="not followed yet"):
        follow.import_state(["a"], {"log": np.zeros((1, F))})


def test_beat_rhythm_round_trip_keeps_asystole_and_refuses_what_does_not_fit() -> None:
    """Two ECG leads' beats stop at 15 s: exported at 17 s (silent 2 s) and imported into
    a fresh rhythm, the stream resuming at 20 s, asystole is flagged where the original,
    fed the same rows, flags it (4 s of received signal after the last beat), on the same
    lead. A wrong shape, an impossible value or a patient held twice is refused, nothing
    changed."""
    from monitor.core.rhythm import PEAKS, BeatRhythm
    from monitor.core.slots import SlotMap
    from tests.support.ecg import PERIOD, beats_every, ecg_at

    beats = beats_every(0.8, 0.3, 15.0)
    t, x = ecg_at(beats, 30.0)
    both = np.column_stack([x, 0.5 * x, np.zeros_like(x)])

    def rhythm(table: SlotMap) -> BeatRhythm:
        return BeatRhythm([0, 1], [0.2, 0.2], PERIOD, F, table, asystole_s=4.0)

    def flags(r: BeatRhythm, table: SlotMap, part: np.ndarray) -> list[tuple[float, int]]:
        rows = np.flatnonzero(part)
        out = []
        for i in range(0, rows.size, 256):
            at = rows[i : i + 256]
            beats = r.find(table.assign(["a"] * at.size), both[at], t[at].tolist())
            if beats is not None and beats.asystole is not None:
                rows_cols = zip(*np.nonzero(beats.asystole), strict=True)
                out += [(float(t[at][row]), int(c)) for row, c in rows_cols]
        return out

    table = SlotMap()
    original = rhythm(table)
    assert flags(original, table, t < 17.0) == []
    ids, arrays = original.export_state()
    assert ids == ["a"]
    assert np.isnan(arrays["scalars"][0, 2]).all()  # not a beat waveform
    fresh_table = SlotMap()
    restored = rhythm(fresh_table)
    restored.import_state(ids, arrays)
    later = t >= 20.0
    got = flags(restored, fresh_table, later)
    assert got
    assert got == flags(original, table, later)
    assert {c for _, c in got} == {0}
    # 4 s of received signal after the last beat: the 3 s of the restart not counted.
    assert got[0][0] == pytest.approx(max(beats) + 4.0 + 3.0, abs=0.02)
    other = rhythm(SlotMap())
    with pytest.raises(ValueError, match="shape"):
        other.import_state(ids, {**arrays, "peaks": np.zeros((1, F, PEAKS + 1))})
    bad = arrays["scalars"].copy()
    bad[0, 0, 2] = -1.0  # heard beats
    with pytest.raises(ValueError, match="out of range"):
        other.import_state(ids, {**arrays, "scalars": bad})
    other.import_state(ids, arrays)
    with pytest.raises(ValueError, match="not followed yet"):
        other.import_state(ids, arrays)
