"""Partial vital sets: the codec, the masked window store and the stretched gap policy."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from monitor.core.codec import CodecLimits, Decoded, Rejection
from monitor.core.windows import WindowStore
from tests.support.ingest import decode_one, push_one

FEATURES = ("heart_rate", "spo2", "bp_sys")
T0 = 1_700_000_000.0
PARTIAL = CodecLimits(partial=True)


def message(vitals: dict[str, float], seq: int = 1) -> bytes:
    body = {"v": 1, "patient_id": "p1", "t": T0 + seq, "seq": seq, "vitals": vitals}
    return json.dumps(body).encode()


def test_partial_message_decodes_with_nan_for_missing_vitals() -> None:
    """With `partial`, a message with a subset of the features decodes; the rest are NaN."""
    out = decode_one(
        message({"heart_rate": 80.0}), topic_patient_id="p1", features=FEATURES, now=T0 + 1,
        limits=PARTIAL,
    )  # fmt: skip
    assert isinstance(out, Decoded)
    values = out.samples[0].values
    assert values[0] == 80.0
    assert math.isnan(values[1])
    assert math.isnan(values[2])


def test_partial_still_refuses_a_message_without_any_model_vital() -> None:
    """A message naming none of the model's vitals stays `missing_vital`."""
    out = decode_one(
        message({"temperature": 37.0}), topic_patient_id="p1", features=FEATURES, now=T0 + 1,
        limits=PARTIAL,
    )  # fmt: skip
    assert isinstance(out, Rejection)
    assert out.reason == "missing_vital"


def test_without_partial_a_missing_vital_is_refused() -> None:
    """A model without an observed mask still needs every feature."""
    out = decode_one(
        message({"heart_rate": 80.0, "spo2": 97.0}), topic_patient_id="p1", features=FEATURES,
        now=T0 + 1,
    )  # fmt: skip
    assert isinstance(out, Rejection)
    assert (out.reason, out.vital) == ("missing_vital", "bp_sys")


def test_partial_plausibility_applies_to_present_vitals() -> None:
    """A sample whose only model vital is out of bounds is an artifact, refused."""
    out = decode_one(
        message({"heart_rate": 500.0}), topic_patient_id="p1", features=FEATURES, now=T0 + 1,
        limits=PARTIAL,
    )  # fmt: skip
    assert isinstance(out, Rejection)
    assert (out.reason, out.vital) == ("artifact", "heart_rate")
    assert out.detail == "heart_rate=500 outside [10, 300] bpm (seq 1)"


def test_partial_drops_an_implausible_vital_and_keeps_the_others() -> None:
    """SpO2 0 (a probe off) beside a plausible heart rate: the sample decodes with spo2 NaN
    and names it in `artifacts`; in feature order when several. Without `partial` the same
    message is refused as an artifact, as before."""
    msg = message({"heart_rate": 80.0, "spo2": 0.0, "bp_sys": 500.0})
    out = decode_one(msg, topic_patient_id="p1", features=FEATURES, now=T0 + 1, limits=PARTIAL)
    assert isinstance(out, Decoded)
    assert out.artifacts == ("spo2", "bp_sys")
    values = out.samples[0].values
    assert values[0] == 80.0
    assert math.isnan(values[1])
    assert math.isnan(values[2])
    full = decode_one(msg, topic_patient_id="p1", features=FEATURES, now=T0 + 1)
    assert isinstance(full, Rejection)
    assert (full.reason, full.vital) == ("artifact", "spo2")
    clean = decode_one(
        message({"heart_rate": 80.0}), topic_patient_id="p1", features=FEATURES, now=T0 + 1,
        limits=PARTIAL,
    )  # fmt: skip
    assert isinstance(clean, Decoded)
    assert clean.artifacts == ()


def masked_store(window: int = 4, **options: float) -> WindowStore:
    return WindowStore(
        window, 2, max_patients=2, idle_ttl_s=1e6, max_gap_s=options.get("max_gap_s", 10.0),
        masked=True, period_s=options.get("period_s", 0.0),
    )  # fmt: skip


def test_masked_store_carries_forward_and_flags() -> None:
    """A missing vital is carried from the previous sample with flag 0; present ones get 1."""
    ws = masked_store()
    nan = math.nan
    rows = [(80.0, 97.0), (81.0, nan), (82.0, nan), (83.0, 95.0), (84.0, nan)]
    results = [
        push_one(ws, "a", float(i), i, np.array(r), 0.0) for i, r in enumerate(rows, start=1)
    ]
    assert [r.outcome for r in results] == ["warming_up"] * 4 + ["ready"]
    context = results[-1].context
    assert context is not None
    np.testing.assert_array_equal(context[:, 0], [80.0, 81.0, 82.0, 83.0])
    np.testing.assert_array_equal(context[:, 1], [97.0, 97.0, 97.0, 95.0])
    np.testing.assert_array_equal(context[:, 2], [1, 1, 1, 1])
    np.testing.assert_array_equal(context[:, 3], [1, 0, 0, 1])


def test_masked_store_backfills_a_vital_first_seen_inside_the_window() -> None:
    """A vital first seen mid-window is written back over earlier rows (flags stay 0);
    a vital never seen stays NaN."""
    ws = masked_store()
    nan = math.nan
    rows = [(80.0, nan), (81.0, nan), (82.0, 96.0), (83.0, nan), (84.0, nan)]
    results = [
        push_one(ws, "a", float(i), i, np.array(r), 0.0) for i, r in enumerate(rows, start=1)
    ]
    context = results[-1].context
    assert context is not None
    np.testing.assert_array_equal(context[:, 1], [96.0, 96.0, 96.0, 96.0])
    np.testing.assert_array_equal(context[:, 3], [0, 0, 1, 0])
    never = masked_store()
    out = [push_one(never, "b", float(i), i, np.array([70.0 + i, nan]), 0.0) for i in range(1, 6)]
    last = out[-1].context
    assert last is not None
    assert np.isnan(last[:, 1]).all()
    np.testing.assert_array_equal(last[:, 3], [0, 0, 0, 0])


@pytest.mark.parametrize("pattern", ["random", "first_complete_after_partial"])
def test_masked_batch_push_matches_pushing_each_sample_alone(pattern: str) -> None:
    """A batch stores the same windows as pushing each sample alone, for full and partial
    samples, also when a vital's first value comes in a complete sample (its value is
    written back over the window's earlier rows, which only the sample-by-sample policy
    does)."""
    rng = np.random.default_rng(3)
    n = 60
    values = rng.normal(80.0, 5.0, size=(n, 2))
    if pattern == "random":
        values[rng.random((n, 2)) < 0.3] = np.nan
    else:
        values[:24, 1] = np.nan  # the second vital arrives at 24, the first sample of a run
    one, run = masked_store(), masked_store()
    expected = [push_one(one, "a", float(i), i, values[i], 0.0) for i in range(n)]
    got: list[np.ndarray | None] = [None] * n
    plain = 0
    for start, stop in ((0, 24), (24, 26), (26, n)):
        pushed = run.push(
            ["a"] * (stop - start), [float(i) for i in range(start, stop)],
            list(range(start, stop)), values[start:stop], [0.0] * (stop - start),
        )  # fmt: skip
        plain += int(pushed.plain.sum())
        for j, i in enumerate(range(start, stop)):
            got[i] = pushed.result(j).context
    if pattern != "random":  # complete samples after the written-back one: plain
        assert plain > 0
    for i, result in enumerate(expected):
        if result.context is None:
            assert got[i] is None
        else:
            np.testing.assert_array_equal(got[i], result.context)


def test_gap_limit_stretches_for_a_slower_stream() -> None:
    """With the model's period, a once-a-minute stream is not reset at every sample."""
    ws = WindowStore(3, 1, max_patients=1, idle_ttl_s=1e6, max_gap_s=30.0, period_s=1.0)
    results = [push_one(ws, "a", 60.0 * i, i, np.array([1.0]), 60.0 * i) for i in range(1, 7)]
    # The second sample is the first interval seen: the stream's rate, not a gap (60 s is
    # over 30 s, but nothing to judge it by yet); from then on the limit is 30 x 60 s.
    assert [r.gap_reset for r in results] == [False] * 6
    assert results[-1].outcome == "ready"
    assert ws.stale(60.0 * 6 + 100.0, 8.0) == []  # 100 s: under 8 x 60 s
    assert ws.stale(60.0 * 6 + 500.0, 8.0) == ["a"]


def test_gap_limit_unchanged_for_a_stream_at_the_model_rate() -> None:
    """At the model's own rate the limit is `max_gap_s`, as without a period."""
    ws = WindowStore(3, 1, max_patients=1, idle_ttl_s=1e6, max_gap_s=30.0, period_s=1.0)
    times = [1.0, 2.0, 3.0, 34.0, 35.0]
    results = [push_one(ws, "a", t, i, np.array([1.0]), t) for i, t in enumerate(times, start=1)]
    assert [r.gap_reset for r in results] == [False, False, False, True, False]
    assert ws.stale(35.0 + 9.0, 8.0) == ["a"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_interleaved_partial_batches_store_what_one_by_one_stores(seed: int) -> None:
    """Many patients interleaved, each sending random subsets of three vitals (one vital
    some patients never send, one that starts late), in batches of 40 to 120: every
    sample's outcome and context equal pushing it alone, and most partial samples take
    the array path (carried forward there, not sample by sample)."""
    rng = np.random.default_rng(seed)
    n_patients, steps, f = 12, 60, 3
    rows = []
    for step in range(steps):
        for p in rng.permutation(n_patients):
            values = rng.normal(80.0, 5.0, size=f)
            values[rng.random(f) < 0.4] = np.nan
            if p % 4 == 0:
                values[2] = np.nan  # never sent by these patients
            if p % 3 == 1 and step < 30:
                values[1] = np.nan  # arrives late: its first value is written back
            if np.isnan(values).all():
                values[0] = 75.0
            rows.append((f"p{p}", float(step), step, values))

    def store() -> WindowStore:
        return WindowStore(
            6, f, max_patients=n_patients, idle_ttl_s=1e6, max_gap_s=10.0, masked=True
        )

    alone, batched = store(), store()
    expected = [push_one(alone, pid, t, q, v, t) for pid, t, q, v in rows]
    got, plain_partial, i = [], 0, 0
    while i < len(rows):
        chunk = rows[i : i + int(rng.integers(40, 120))]
        pushed = batched.push(
            [r[0] for r in chunk], [r[1] for r in chunk], [r[2] for r in chunk],
            np.stack([r[3] for r in chunk]), [r[1] for r in chunk],
        )  # fmt: skip
        partial = np.isnan(np.stack([r[3] for r in chunk])).any(axis=1)
        plain_partial += int((pushed.plain & partial).sum())
        got += [pushed.result(j) for j in range(len(chunk))]
        i += len(chunk)
    for want, have in zip(expected, got, strict=True):
        assert have.outcome == want.outcome
        if want.context is None:
            assert have.context is None
        else:
            np.testing.assert_array_equal(have.context, want.context)
    assert plain_partial > len(rows) // 3
    assert batched.patients() == alone.patients()
