"""Beat rhythm on beat waveforms (monitor/core/rhythm.py, monitor/training/rhythm.py)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.rhythm import (
    CONFIRM_S,
    KEEP_HEARD_S,
    REFRACTORY_S,
    SHAPE_MEMORY,
    SHAPE_POST_S,
    SHAPE_RECENT,
    SHAPE_SHIFT_S,
    BeatRhythm,
    BeatTracker,
    beat_intervals,
)
from monitor.core.slots import SlotMap
from monitor.core.vitals import Registry, Vital
from monitor.training.data import Segment
from monitor.training.rhythm import regular_share, rhythm_specs
from tests.support.ecg import PERIOD, beats_every, ecg, ecg_at, ecg_of


def run(
    rhythm: BeatRhythm, table: SlotMap, ids: list[str], t: np.ndarray, x: np.ndarray, size: int
) -> list[tuple[str, float]]:
    """Feed rows in batches of `size`; return the (patient, time) of each premature beat."""
    found = []
    for i in range(0, len(ids), size):
        placed = table.assign(ids[i : i + size])
        out = rhythm.find(placed, x[i : i + size, None], t[i : i + size].tolist())
        if out is not None and out.premature is not None:
            for row in np.flatnonzero(out.premature[:, 0]).tolist():
                found.append((ids[i + row], float(t[i + row])))
    return found


def test_a_premature_beat_is_found_once_right_after_it_and_normal_beats_never() -> None:
    """Two beats 30 % early in a minute of 2 %-jittered rhythm: each is found at the sample
    that confirms it (CONFIRM_S after its start), nothing else is."""
    t, x, early = ecg(60.0, early=(20.0, 41.0))
    table = SlotMap()
    found = run(BeatRhythm([0], [0.2], PERIOD, 1, table), table, ["p"] * t.size, t, x, 64)
    assert len(found) == 2
    for (_, at), beat in zip(found, early, strict=True):
        assert 0.0 <= at - beat <= CONFIRM_S + 0.03


def test_batches_and_interleaved_patients_give_what_one_by_one_gives() -> None:
    """Two patients' rows interleaved, in batches of 1 or of 257: the same beats found."""
    t1, x1, _ = ecg(40.0, early=(15.0,), seed=1)
    t2, x2, _ = ecg(40.0, rr=0.6, early=(25.0,), seed=2)
    ids = ["a", "b"] * t1.size
    t = np.ravel(np.column_stack([t1, t2]))
    x = np.ravel(np.column_stack([x1, x2]))
    results = []
    for size in (1, 257):
        table = SlotMap()
        results.append(run(BeatRhythm([0], [0.2], PERIOD, 1, table), table, ids, t, x, size))
    assert results[0] == results[1]
    assert sorted({pid for pid, _ in results[0]}) == ["a", "b"]


def test_no_interval_spans_a_gap_and_a_reused_slot_starts_afresh() -> None:
    """A 2 s silence starts the rhythm afresh (the beat after it is not judged); a patient
    admitted into a released slot does not inherit the old one's intervals."""
    tracker = BeatTracker(PERIOD)
    t, x, _ = ecg(20.0)
    for ti, xi in zip(t.tolist(), x.tolist(), strict=True):
        tracker.step(ti, xi)
    assert len(tracker.intervals) == 0  # `judge` keeps intervals; `step` alone keeps none
    table = SlotMap()
    rhythm = BeatRhythm([0], [0.2], PERIOD, 1, table)
    run(rhythm, table, ["a"] * t.size, t, x, 128)
    held = rhythm.intervals("a")
    assert held is not None
    assert len(held[0]) == 8
    slot = table.get("a")
    later = t[-1] + 2.0
    run(rhythm, table, ["a"], np.array([later]), np.array([0.0]), 1)
    assert rhythm.intervals("a") == [[]]
    run(rhythm, table, ["a"] * t.size, t + later + 0.01, x, 128)
    again = rhythm.intervals("a")
    assert again is not None
    assert len(again[0]) == 8
    table.release("a")
    assert rhythm.intervals("a") is None
    run(rhythm, table, ["b"], np.array([0.0]), np.array([0.0]), 1)
    assert table.get("b") == slot
    assert rhythm.intervals("b") == [[]]


def test_training_marks_beat_waveforms_and_nothing_else() -> None:
    """An ECG-like trace at 360 Hz is a beat waveform; breathing (a 4 s sine), noise and a
    once-a-second series are not."""
    _, x, _ = ecg(60.0)
    rng = np.random.default_rng(3)
    t = np.arange(0.0, 60.0, PERIOD)
    values = np.column_stack([x, np.sin(2 * np.pi * t / 4.0), rng.standard_normal(t.size)])
    specs = rhythm_specs([Segment(values)], ["ecg_mv", "resp", "noise"], PERIOD)
    assert list(specs) == ["ecg_mv"]
    assert abs(specs["ecg_mv"].interval_s - 0.8) < 0.02
    assert specs["ecg_mv"].regular_share > 0.95
    assert rhythm_specs([Segment(values)], ["ecg_mv", "resp", "noise"], 1.0) == {}
    rr = beat_intervals(x, PERIOD)
    # Every beat after the 2 s warm-up (about 72 of 75), none twice, none missed.
    assert 70 <= len(rr) <= 72
    assert np.all(np.abs(rr - 0.8) < 0.1)


def test_an_ectopic_beat_and_its_pause_count_as_regular() -> None:
    """Bigeminy (every second beat 30 % early, then a compensatory pause): no interval lies
    within 25 % of the median, yet the rhythm is a regular one with ectopy and the trace a
    beat waveform whose ectopy is told by timing; an irregular rhythm (intervals anywhere
    from 0.45 to 1.15 s, atrial fibrillation) is one too: on an ECG lead (in mV) its
    ectopy is told by the shape of its beats, on a pulse wave (in NU) by nothing (its
    silence is still asystole); noise at that rate is none."""
    rng = np.random.default_rng(4)
    pairs = np.tile([0.56, 1.04], 40) * (1 + 0.02 * rng.standard_normal(80))
    assert regular_share(pairs, float(np.median(pairs))) == 1.0
    assert np.mean(np.abs(pairs / np.median(pairs) - 1.0) <= 0.25) == 0.0
    # One premature beat in a steady rhythm: its interval and its pause are both regular.
    one = np.array([0.8] * 10 + [0.5, 1.1] + [0.8] * 10)
    assert regular_share(one, 0.8) == 1.0
    # A run of early beats is not: only its last, with the interval after it, is a pair.
    run_of_six = np.array([0.8] * 10 + [0.5] * 6 + [0.8] * 10)
    assert regular_share(run_of_six, 0.8) == 21 / 26
    specs = rhythm_specs([Segment(ecg_of(pairs)[:, None])], ["ecg_mv"], PERIOD)
    assert list(specs) == ["ecg_mv"]
    assert specs["ecg_mv"].regular_share > 0.95
    assert specs["ecg_mv"].ectopy == "timing"
    irregular = rng.uniform(0.45, 1.15, 80)
    x = ecg_of(irregular)
    signals = Registry(
        [Vital("ecg_mv", "mV", -5.0, 5.0, "ECG", PERIOD),
         Vital("pleth_nu", "NU", -5.0, 5.0, "pleth", PERIOD)]
    )  # fmt: skip
    both = np.column_stack([x, x])
    specs = rhythm_specs([Segment(both)], ["ecg_mv", "pleth_nu"], PERIOD, signals)
    assert {name: spec.ectopy for name, spec in specs.items()} == {
        "ecg_mv": "shape",
        "pleth_nu": "none",
    }
    spec = specs["ecg_mv"]
    assert spec.regular_share < 0.9
    assert spec.shape_distance is not None
    assert spec.shape_distance < 0.3
    # Irregular spikes in noise (beats to the detector) repeat no shape: not a waveform.
    noise = 0.3 * rng.standard_normal(x.size)
    at = (0.3 + np.cumsum(irregular) - irregular[0]) / PERIOD
    for i in at[at < x.size - 3].astype(int).tolist():
        noise[i : i + 3] += 3.0
    assert rhythm_specs([Segment(noise[:, None])], ["n"], PERIOD) == {}


def test_a_sinus_arrhythmia_is_not_premature_but_an_ectopic_beat_in_it_is() -> None:
    """Intervals swinging 1.0 s +- 25 % over 8 beats (breathing): the shortest is 25 % below
    the median but only 9 % below the one before it, so no beat is premature; a beat 40 %
    early (27 % against its neighbour, at the rhythm's quickening), in the same rhythm, is
    found."""
    k = np.arange(80)
    swing = 1.0 + 0.25 * np.sin(2 * np.pi * k / 8)
    assert swing.min() < 0.8 * np.median(swing)
    assert np.all(swing[1:] >= 0.8 * swing[:-1])
    x = ecg_of(swing)
    t = np.arange(x.size) * PERIOD
    table = SlotMap()
    assert run(BeatRhythm([0], [0.2], PERIOD, 1, table), table, ["p"] * t.size, t, x, 64) == []
    ectopic = swing.copy()
    ectopic[40] *= 0.6
    ectopic[41] += swing[40] - ectopic[40]  # its compensatory pause
    x = ecg_of(ectopic)
    t = np.arange(x.size) * PERIOD
    table = SlotMap()
    found = run(BeatRhythm([0], [0.2], PERIOD, 1, table), table, ["p"] * t.size, t, x, 64)
    beat = 0.3 + float(np.sum(ectopic[:41]))
    assert len(found) == 1
    assert 0.0 <= found[0][1] - beat <= CONFIRM_S + 0.03


def test_with_two_leads_a_premature_beat_counts_once_and_noise_on_one_lead_not_at_all() -> None:
    """Two leads of one heart: the early beat (on both) is found once; a noise spike on
    one lead alone, which makes a premature 'beat' there, raises nothing."""
    t, x, early = ecg(60.0, early=(20.0,), seed=5)
    rng = np.random.default_rng(6)
    second = 0.6 * x + 0.02 * rng.standard_normal(x.size)
    # Halfway between two beats: a sharp artefact on the first lead only.
    beat_times = t[1:-1][(x[1:-1] > 0.5) & (x[1:-1] >= x[:-2]) & (x[1:-1] >= x[2:])]
    after = beat_times[beat_times > 40.0][0]
    spike = int(np.searchsorted(t, after + 0.4))
    first = x.copy()
    first[spike : spike + 4] += 1.0
    values = np.column_stack([first, second])
    table = SlotMap()
    rhythm = BeatRhythm([0, 1], [0.2, 0.2], PERIOD, 2, table)
    found = []
    for i in range(0, t.size, 128):
        out = rhythm.find(
            table.assign(["p"] * len(t[i : i + 128])), values[i : i + 128], t[i : i + 128].tolist()
        )
        if out is not None and out.premature is not None:
            found += [(float(t[i + r]), c) for r, c in zip(*np.nonzero(out.premature), strict=True)]
    assert len(found) == 1
    assert 0.0 <= found[0][0] - early[0] <= CONFIRM_S + 0.03
    # Alone, the first lead does take the artefact for a premature beat.
    table = SlotMap()
    alone = run(BeatRhythm([0], [0.2], PERIOD, 1, table), table, ["p"] * t.size, t, first, 128)
    assert any(abs(at - t[spike]) < 0.2 for _, at in alone)


def test_a_large_artefact_in_the_warm_up_does_not_blind_the_detector() -> None:
    """A 20 mV artefact in the first second sets a level no beat reaches; after RELEARN_S
    without a beat the level is learned again, and the beats (and an early one) are found."""
    t, x, early = ecg(60.0, early=(40.0,), seed=8)
    x = x.copy()
    x[(t > 0.5) & (t < 0.52)] += 20.0
    rr = beat_intervals(x, PERIOD)
    assert len(rr) > 60  # of about 75 beats: all but the warm-ups'
    table = SlotMap()
    found = run(BeatRhythm([0], [0.2], PERIOD, 1, table), table, ["p"] * t.size, t, x, 128)
    assert len(found) == 1
    assert 0.0 <= found[0][1] - early[0] <= CONFIRM_S + 0.03


def flagged_rows(
    rhythm: BeatRhythm,
    table: SlotMap,
    t: np.ndarray,
    x: np.ndarray,
    flag: str = "asystole",
    size: int = 128,
) -> list[tuple[float, int]]:
    """Feed one patient's rows ``(T, F)`` in batches; return (time, column) of every cell
    with the `Beats` field `flag` set (asystole, misshapen)."""
    flagged = []
    for i in range(0, t.size, size):
        out = rhythm.find(table.assign(["p"] * len(t[i : i + size])), x[i : i + size],
                          t[i : i + size].tolist())  # fmt: skip
        cells = None if out is None else getattr(out, flag)
        if cells is not None:
            for row, col in zip(*np.nonzero(cells), strict=True):
                flagged.append((float(t[i + row]), int(col)))
    return flagged


def test_asystole_is_flagged_from_4_s_after_the_last_heartbeat_until_the_next() -> None:
    """Beats every 0.8 s, none from 20 s to 30 s (noise only), then beats again: every row
    from the last beat + 4 s to the first beat after the pause is flagged, on the lead,
    and no other row; a start-up flat line (no rhythm yet) flags nothing."""
    beats = beats_every(0.8, 0.3, 20.0) + beats_every(0.8, 30.0, 45.0)
    t, x = ecg_at(beats, 45.0)
    table = SlotMap()
    flagged = flagged_rows(BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0), table, t, x[:, None])
    last, back = max(b for b in beats if b < 20.0), 30.0
    assert {col for _, col in flagged} == {0}
    times = np.array([at for at, _ in flagged])
    assert last + 3.95 < times.min() <= last + 4.0 + 2 * PERIOD
    assert back <= times.max() <= back + 0.1  # until the returning beat is found
    assert times.size == pytest.approx((times.max() - times.min()) / PERIOD + 1, abs=2)
    # Off, or a flat line before any rhythm: nothing.
    table = SlotMap()
    assert flagged_rows(BeatRhythm([0], [0.2], PERIOD, 1, table), table, t, x[:, None]) == []
    table = SlotMap()
    t2, x2 = ecg_at(beats_every(0.8, 12.3, 20.0), 20.0)
    rhythm = BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0)
    assert flagged_rows(rhythm, table, t2, x2[:, None]) == []


def test_a_pulse_still_beating_is_no_asystole_and_a_silent_sender_is_not_counted() -> None:
    """Two beat waveforms: the lead falls silent while the second goes on beating: no
    asystole (a lead's fault, as the 2015 Challenge's false asystole alarms). Both silent:
    flagged on the first. The second no longer sent (NaN): the lead alone decides."""
    lead_beats = beats_every(0.8, 0.3, 20.0) + beats_every(0.8, 30.0, 40.0)
    _, lead = ecg_at(lead_beats, 40.0, seed=1)
    t, pulse = ecg_at(beats_every(0.8, 0.5, 40.0), 40.0, seed=2)
    table = SlotMap()
    both = np.column_stack([lead, pulse])
    rhythm = BeatRhythm([0, 1], [0.2, 0.2], PERIOD, 2, table, 4.0)
    assert flagged_rows(rhythm, table, t, both) == []
    _, quiet = ecg_at(beats_every(0.8, 0.5, 20.0) + beats_every(0.8, 30.2, 40.0), 40.0, seed=2)
    table = SlotMap()
    rhythm = BeatRhythm([0, 1], [0.2, 0.2], PERIOD, 2, table, 4.0)
    flagged = flagged_rows(rhythm, table, t, np.column_stack([lead, quiet]))
    assert flagged
    assert {col for _, col in flagged} == {0}
    assert 19.7 + 3.95 < min(at for at, _ in flagged) < 19.7 + 4.05  # the later silence
    gone = both.copy()
    gone[t > 15.0, 1] = np.nan
    table = SlotMap()
    rhythm = BeatRhythm([0, 1], [0.2, 0.2], PERIOD, 2, table, 4.0)
    assert 19.5 + 3.95 < min(at for at, _ in flagged_rows(rhythm, table, t, gone)) < 19.5 + 4.05


def test_smaller_beats_are_still_heard_and_a_relearn_does_not_make_noise_a_heartbeat() -> None:
    """Beats falling to 40 % of their size for 10 s are found (search-back: never two in a
    row missed, until the level has learned their size; no asystole); in a flat line the
    relearned level stays above the noise (asystole holds), and the heartbeat's return is
    heard at once."""
    beats = beats_every(0.8, 0.3, 50.0)
    size = [0.4 if 20.0 <= b < 30.0 else 1.0 for b in beats]
    t, x = ecg_at(beats, 50.0, size)
    rr = beat_intervals(x, PERIOD)
    assert rr.max() < 1.7
    assert np.count_nonzero(rr > 1.2) <= 4
    table = SlotMap()
    assert flagged_rows(BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0), table, t, x[:, None]) == []
    beats = beats_every(0.8, 0.3, 20.0) + beats_every(0.8, 35.0, 45.0)
    t, x = ecg_at(beats, 45.0)
    table = SlotMap()
    flagged = flagged_rows(BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0), table, t, x[:, None])
    times = [at for at, _ in flagged]
    assert 35.0 <= max(times) <= 35.1
    assert len(times) == pytest.approx((max(times) - min(times)) / PERIOD + 1, abs=2)


def test_a_dropout_of_the_stream_is_not_counted_as_silence_nor_forgets_the_rhythm() -> None:
    """Beats to 20 s, then no samples for 2 s, then a flat line: asystole after 4 s of
    received signal (at 26 s, not 24 s), the rhythm heard before the dropout still
    counting; beats resuming right after a 5 s dropout are no asystole; after a dropout
    over KEEP_HEARD_S the stream is heard afresh (a flat line then flags nothing), unless
    it stopped in a silence: then the flat line after it is asystole from its first
    sample, until the beats return."""
    t, x = ecg_at(beats_every(0.8, 0.3, 20.0), 40.0)
    kept = (t < 20.0) | (t >= 22.0)
    table = SlotMap()
    rhythm = BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0)
    flagged = flagged_rows(rhythm, table, t[kept], x[kept, None])
    last = max(beats_every(0.8, 0.3, 20.0))
    assert last + 2.0 + 3.95 < min(at for at, _ in flagged) < last + 2.0 + 4.05
    t, x = ecg_at(beats_every(0.8, 0.3, 20.0) + beats_every(0.8, 25.0, 40.0), 40.0)
    kept = (t < 20.0) | (t >= 25.0)
    table = SlotMap()
    rhythm = BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0)
    assert flagged_rows(rhythm, table, t[kept], x[kept, None]) == []
    t, x = ecg_at(beats_every(0.8, 0.3, 20.0), 80.0)
    kept = (t < 20.0) | (t >= 20.0 + KEEP_HEARD_S + 1.0)
    table = SlotMap()
    rhythm = BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0)
    assert flagged_rows(rhythm, table, t[kept], x[kept, None]) == []
    back = 26.0 + KEEP_HEARD_S + 10.0
    t, x = ecg_at(beats_every(0.8, 0.3, 20.0) + beats_every(0.8, back + 5.0, back + 15.0), 80.0)
    kept = (t < 26.0) | (t >= back)
    table = SlotMap()
    rhythm = BeatRhythm([0], [0.2], PERIOD, 1, table, 4.0)
    times = np.array([at for at, _ in flagged_rows(rhythm, table, t[kept], x[kept, None])])
    assert last + 3.95 < times.min() < last + 4.05
    after = times[times >= back]
    assert back <= after.min() < back + 0.01  # at once: still silent
    assert back + 5.0 <= after.max() < back + 5.1  # until the first beat back


def shape_rows(
    rhythm: BeatRhythm, table: SlotMap, t: np.ndarray, x: np.ndarray
) -> list[tuple[float, int]]:
    """(time, column) of every misshapen beat found in one patient's rows ``(T, F)``."""
    return flagged_rows(rhythm, table, t, x, "misshapen")


def wandering(beats: list[float], seconds: float, wide: frozenset[int], seed: int = 0):
    """`ecg_at` with the amplitudes of real leads: each beat 0.8 to 1.2 mV, and a 0.5 mV
    baseline wander at 0.25 Hz (breathing)."""
    size = np.random.default_rng(seed + 100).uniform(0.8, 1.2, len(beats)).tolist()
    t, x = ecg_at(beats, seconds, size, seed=seed, wide=wide)
    return t, x + 0.5 * np.sin(2 * np.pi * 0.25 * t)


def test_a_wide_beat_on_time_is_misshapen_and_normal_beats_never() -> None:
    """Beats every 0.8 s with their amplitude and baseline swinging; two wide complexes on
    time (no premature beat): each found once, SHAPE_POST_S + SHAPE_SHIFT_S after its
    start, nothing else; with the shape off, nothing."""
    beats = beats_every(0.8, 0.3, 60.0)
    t, x = wandering(beats, 60.0, frozenset({30, 55}))
    table = SlotMap()
    found = shape_rows(BeatRhythm([0], [None], PERIOD, 1, table, shape=[0.5]), table, t, x[:, None])
    assert len(found) == 2
    for (at, col), i in zip(found, (30, 55), strict=True):
        assert col == 0
        assert 0.1 <= at - beats[i] <= SHAPE_POST_S + SHAPE_SHIFT_S + 0.02
    table = SlotMap()
    assert shape_rows(BeatRhythm([0], [None], PERIOD, 1, table), table, t, x[:, None]) == []


def test_a_new_shape_that_lasts_becomes_the_template_and_noise_is_no_shape() -> None:
    """From 30 s every beat is wide (a lead moved): flagged for SHAPE_MEMORY beats, then
    the new shape is the template and nothing more is; beats in heavy noise (every beat
    far from the template) raise nothing after their first few."""
    beats = beats_every(0.8, 0.3, 60.0)
    t, x = wandering(beats, 60.0, frozenset(i for i, b in enumerate(beats) if b >= 30.0))
    table = SlotMap()
    found = shape_rows(BeatRhythm([0], [None], PERIOD, 1, table, shape=[0.5]), table, t, x[:, None])
    assert len(found) == SHAPE_MEMORY
    assert found[0][0] >= 30.0
    assert found[-1][0] < 30.0 + SHAPE_MEMORY * 0.8 + 0.2
    t, x = wandering(beats, 60.0, frozenset())
    noisy = x + np.where(t > 30.0, 0.25 * np.random.default_rng(3).standard_normal(t.size), 0)
    table = SlotMap()
    found = shape_rows(
        BeatRhythm([0], [None], PERIOD, 1, table, shape=[0.5]), table, t, noisy[:, None]
    )
    # The noise's first 'beats' (every REFRACTORY_S) are misshapen until a quarter of the
    # last SHAPE_RECENT are noise too; then the level follows the noise and none is.
    assert found
    assert all(30.0 <= at < 30.0 + SHAPE_RECENT * REFRACTORY_S for at, _ in found)


def test_with_two_leads_a_wide_beat_counts_once_and_an_artefact_on_one_lead_not_at_all() -> None:
    """Two leads of one heart: a wide beat on both is found once; a wide artefact on one
    lead alone, in place of a normal beat there, raises nothing (alone it would)."""
    beats = beats_every(0.8, 0.3, 60.0)
    t, first = wandering(beats, 60.0, frozenset({20, 50}), seed=1)
    _, second = wandering(beats, 60.0, frozenset({20}), seed=2)
    table = SlotMap()
    rhythm = BeatRhythm([0, 1], [None, None], PERIOD, 2, table, shape=[0.5, 0.5])
    found = shape_rows(rhythm, table, t, np.column_stack([first, second]))
    assert len(found) == 1
    assert 0.1 <= found[0][0] - beats[20] <= SHAPE_POST_S + SHAPE_SHIFT_S + 0.02
    table = SlotMap()
    alone = shape_rows(
        BeatRhythm([0], [None], PERIOD, 1, table, shape=[0.5]), table, t, first[:, None]
    )
    assert len(alone) == 2
