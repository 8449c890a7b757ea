"""The window store: warm-up, context windows, order and gap policy, cap and eviction."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.windows import OFFSET_SETTLE, RELEARN_SAMPLES, SLACK, PushResult, WindowStore
from tests.support.ingest import push_one

W, F = 4, 2


def store(**changes: float) -> WindowStore:
    options: dict[str, float] = {"max_patients": 3, "idle_ttl_s": 60.0, "max_gap_s": 10.0}
    options.update(changes)
    return WindowStore(
        W,
        F,
        max_patients=int(options["max_patients"]),
        idle_ttl_s=options["idle_ttl_s"],
        max_gap_s=options["max_gap_s"],
        period_s=options.get("period_s", 0.0),
    )


def vals(seq: int) -> np.ndarray:
    return np.array([seq, 100 + seq], dtype=np.float64)


def feed(ws: WindowStore, pid: str, seqs: list[int], now: float = 0.0) -> list[PushResult]:
    return [push_one(ws, pid, float(s), s, vals(s), now) for s in seqs]


def test_warm_up_then_ready() -> None:
    """The first W samples warm up; the (W+1)th is the first with a context."""
    ws = store()
    outcomes = [r.outcome for r in feed(ws, "a", [1, 2, 3, 4, 5, 6])]
    assert outcomes == ["warming_up"] * 4 + ["ready"] * 2


def test_context_is_the_window_before_the_sample_in_order() -> None:
    """The context of sample s holds samples s-W .. s-1, oldest first, as float32."""
    ws = store()
    results = feed(ws, "a", list(range(1, 9)))
    for seq, result in zip(range(1, 9), results, strict=True):
        if seq <= W:
            assert result.context is None
            continue
        assert result.context is not None
        assert result.context.dtype == np.float32
        assert result.context.shape == (W, F)
        assert result.context[:, 0].tolist() == list(range(seq - W, seq))
        assert result.context[:, 1].tolist() == [100 + s for s in range(seq - W, seq)]


def test_context_is_a_copy() -> None:
    """Later pushes and edits to a returned context do not affect each other."""
    ws = store()
    first = feed(ws, "a", [1, 2, 3, 4, 5])[-1].context
    assert first is not None
    first[:] = -1
    second = push_one(ws, "a", 6.0, 6, vals(6), 0.0).context
    assert second is not None
    assert second[:, 0].tolist() == [2, 3, 4, 5]
    assert first[:, 0].tolist() == [-1, -1, -1, -1]


@pytest.mark.parametrize(
    ("t", "seq", "outcome"),
    [
        (5.0, 4, "duplicate"),
        (4.0, 4, "duplicate"),
        (3.0, 3, "late"),
        (4.0, 2, "late"),
    ],
)
def test_duplicates_and_late_samples_are_dropped(t: float, seq: int, outcome: str) -> None:
    """seq == last is a duplicate, seq < last at a time no later than the last is late;
    window untouched."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4])
    assert push_one(ws, "a", t, seq, vals(99), 1.0).outcome == outcome
    assert ws.last_seen("a") == 0.0
    nxt = push_one(ws, "a", 5.0, 5, vals(5), 2.0)
    assert nxt.outcome == "ready"
    assert nxt.missing == 0
    assert nxt.context is not None
    assert nxt.context[:, 0].tolist() == [1, 2, 3, 4]


def test_sequence_jump_is_accepted_and_counted() -> None:
    """A seq jump within max_gap_s is accepted and reports the skipped numbers."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4])
    result = push_one(ws, "a", 5.0, 9, vals(9), 0.0)
    assert (result.outcome, result.missing, result.gap_reset) == ("ready", 4, False)


def test_time_gap_resets_the_window() -> None:
    """A gap above max_gap_s restarts warm-up with this sample as the first of the window."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4, 5])
    result = push_one(ws, "a", 5.0 + 10.5, 6, vals(6), 0.0)
    assert (result.outcome, result.gap_reset, result.missing, result.context) == (
        "warming_up",
        True,
        0,
        None,
    )
    after = [push_one(ws, "a", 16.0 + i, 7 + i, vals(7 + i), 0.0) for i in range(4)]
    assert [r.outcome for r in after] == ["warming_up"] * 3 + ["ready"]
    assert after[-1].context is not None
    assert after[-1].context[:, 0].tolist() == [6, 7, 8, 9]


def test_gap_exactly_at_limit_keeps_the_window() -> None:
    """A gap equal to max_gap_s is not a reset."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4])
    assert push_one(ws, "a", 14.0, 5, vals(5), 0.0).gap_reset is False


def test_cap_refuses_new_patients_while_others_are_fresh() -> None:
    """Past max_patients a new id is refused_cap while every held patient has warmed up
    and is fresh; known patients keep working."""
    ws = store(max_patients=2)
    feed(ws, "a", [1, 2, 3, 4])
    feed(ws, "b", [1, 2, 3, 4])
    refused = push_one(ws, "c", 1.0, 1, vals(1), now=30.0)
    assert (refused.outcome, refused.evicted) == ("refused_cap", ())
    assert len(ws) == 2
    assert "c" not in ws
    assert push_one(ws, "a", 5.0, 5, vals(5), now=30.0).outcome == "ready"


def test_cap_evicts_a_never_warmed_patient_before_refusing() -> None:
    """Full of fresh patients, a new id evicts the least recently seen one whose window
    never filled (a one-message id), never a warmed-up one."""
    ws = store(max_patients=3)
    feed(ws, "real", [1, 2, 3, 4])
    push_one(ws, "junk1", 1.0, 1, vals(1), now=0.0)
    push_one(ws, "junk2", 1.0, 1, vals(1), now=1.0)
    assert not ws.on_probation("real")
    assert ws.on_probation("junk1")
    result = push_one(ws, "new", 1.0, 1, vals(1), now=2.0)
    assert (result.outcome, result.evicted) == ("warming_up", ("junk1",))
    result = push_one(ws, "new2", 1.0, 1, vals(1), now=2.0)
    assert (result.outcome, result.evicted) == ("warming_up", ("junk2",))
    assert sorted(ws.patients()) == ["new", "new2", "real"]


def test_restart_of_the_sequence_counter_is_accepted() -> None:
    """seq going back while the sample time goes on is a device restart: accepted at once,
    the window goes on, no skipped numbers counted."""
    ws = store()
    feed(ws, "a", [100, 101, 102, 103])
    result = push_one(ws, "a", 104.0, 0, vals(0), 0.0)
    assert (result.outcome, result.order, result.missing) == ("ready", "restart", 0)
    after = push_one(ws, "a", 105.0, 1, vals(1), 0.0)
    assert (after.outcome, after.order, after.missing) == ("ready", "", 0)


def test_one_huge_seq_jump_moves_the_order_state_for_one_sample() -> None:
    """A seq jump past max_seq_jump is suspect: accepted without counting skipped numbers,
    and the real counter's next sample is not late (it resumes from before the jump)."""
    ws = WindowStore(W, F, max_patients=3, idle_ttl_s=60.0, max_gap_s=10.0, max_seq_jump=1000)
    feed(ws, "a", [1, 2, 3, 4])
    jump = push_one(ws, "a", 5.0, 2**63 - 1, vals(5), 0.0)
    assert (jump.outcome, jump.order, jump.missing) == ("ready", "seq_jump", 0)
    resumed = push_one(ws, "a", 6.0, 6, vals(6), 0.0)
    # Counted from the real counter's last number (4): only its seq 5 is missing.
    assert (resumed.outcome, resumed.order, resumed.missing) == ("ready", "resumed", 1)
    assert push_one(ws, "a", 7.0, 7, vals(7), 0.0).outcome == "ready"


def test_clock_stepped_back_with_seq_going_on_restarts_the_window() -> None:
    """seq going on while the sample time steps back (a clock corrected backwards) is
    accepted with a window restart, not late until the clock catches up."""
    ws = store()
    feed(ws, "a", [3601, 3602, 3603, 3604])
    back = push_one(ws, "a", 5.0, 3605, vals(5), 0.0)
    assert (back.outcome, back.order, back.gap_reset) == ("warming_up", "clock_back", True)
    assert push_one(ws, "a", 6.0, 3606, vals(6), 0.0).outcome == "warming_up"


def offset_store(**changes: float) -> WindowStore:
    return WindowStore(
        W, F, max_patients=3, idle_ttl_s=1e9, max_gap_s=10.0,
        max_future_skew_s=5.0, max_offset_s=3600.0, clock_alert_s=60.0, **changes,
    )  # fmt: skip


def test_a_constant_clock_offset_is_learned_and_reported_once() -> None:
    """A device 300 s ahead is accepted from its first sample, reported once; its samples
    are ready as any other's."""
    ws = offset_store()
    results = [push_one(ws, "a", 300.0 + s, s, vals(s), float(s)) for s in range(8)]
    assert [r.outcome for r in results] == ["warming_up"] * W + ["ready"] * 4
    assert [r.clock for r in results] == ["offset"] + [""] * 7
    assert ws.clock_offset("a") == 300.0


def test_a_clock_behind_is_reported_once_settled_and_cleared_when_caught_up() -> None:
    """A device 300 s behind is reported after its offset settled; once its samples are
    on time again (it was delivery delay or the clock was fixed), the report ends."""
    ws = offset_store()
    clocks = [push_one(ws, "a", s - 300.0, s, vals(s), float(s)).clock for s in range(10)]
    assert clocks.index("offset") == min(OFFSET_SETTLE, W) - 1
    assert clocks.count("offset") == 1
    assert push_one(ws, "a", 10.0, 10, vals(10), 10.0).clock == "offset_ok"


def test_a_clock_jump_is_refused_then_learned_when_it_persists() -> None:
    """A sample far ahead of the learned offset is refused (clock_skew); when the jump
    persists for RELEARN_SAMPLES samples it is the device's new clock: learned."""
    ws = offset_store()
    feed(ws, "a", [1, 2, 3, 4, 5], now=0.0)
    for i in range(RELEARN_SAMPLES - 1):
        s = 6 + i
        assert push_one(ws, "a", 3000.0 + s, s, vals(s), float(s)).outcome == "clock_skew"
    s = 6 + RELEARN_SAMPLES - 1
    learned = push_one(ws, "a", 3000.0 + s, s, vals(s), float(s))
    assert (learned.outcome, learned.order, learned.gap_reset) == (
        "warming_up",
        "clock_jump",
        True,
    )


def test_cap_evicts_idle_patients_to_admit_a_new_one() -> None:
    """A new id past the cap evicts every patient idle longer than the TTL and takes a slot."""
    ws = store(max_patients=3, idle_ttl_s=60.0)
    push_one(ws, "a", 1.0, 1, vals(1), now=0.0)
    push_one(ws, "b", 1.0, 1, vals(1), now=10.0)
    push_one(ws, "c", 1.0, 1, vals(1), now=100.0)
    result = push_one(ws, "d", 1.0, 1, vals(1), now=100.0)
    assert (result.outcome, result.evicted) == ("warming_up", ("a", "b"))
    assert sorted(ws.patients()) == ["c", "d"]


def test_evict_idle_and_slot_reuse() -> None:
    """evict_idle removes idle patients; their slots are reused, with a fresh window."""
    ws = store(max_patients=2, idle_ttl_s=60.0)
    feed(ws, "a", [1, 2, 3, 4, 5], now=0.0)
    feed(ws, "b", [1], now=50.0)
    assert ws.evict_idle(now=100.0) == ["a"]
    assert ws.patients() == ["b"]
    assert ws.last_seen("a") is None
    results = [push_one(ws, "c", float(s), s, vals(s + 50), now=101.0) for s in range(1, 6)]
    assert [r.outcome for r in results] == ["warming_up"] * 4 + ["ready"]
    assert results[-1].context is not None
    assert results[-1].context[:, 0].tolist() == [51, 52, 53, 54]
    assert len(ws) == 2


def test_stale_lists_patients_silent_past_the_limit() -> None:
    """stale(now, limit) names patients whose last accepted sample is older than limit."""
    ws = store()
    push_one(ws, "a", 1.0, 1, vals(1), now=0.0)
    push_one(ws, "b", 1.0, 1, vals(1), now=5.0)
    push_one(ws, "a", 2.0, 2, vals(2), now=8.0)
    assert ws.stale(now=12.0, limit_s=5.0) == ["b"]
    assert ws.stale(now=14.0, limit_s=5.0) == ["b", "a"]
    assert ws.stale(now=9.0, limit_s=5.0) == []
    assert len(ws) == 2


def test_remove_forgets_a_patient() -> None:
    """remove frees the patient; a later sample starts a fresh window."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4, 5])
    assert ws.remove("a") is True
    assert ws.remove("a") is False
    assert push_one(ws, "a", 6.0, 6, vals(6), 0.0).outcome == "warming_up"


def test_patients_are_independent() -> None:
    """Interleaved patients each get their own window contents."""
    ws = store()
    for s in range(1, 6):
        push_one(ws, "a", float(s), s, vals(s), 0.0)
        push_one(ws, "b", float(s), s, vals(10 * s), 0.0)
    ra = push_one(ws, "a", 6.0, 6, vals(6), 0.0)
    rb = push_one(ws, "b", 6.0, 6, vals(60), 0.0)
    assert ra.context is not None
    assert rb.context is not None
    assert ra.context[:, 0].tolist() == [2, 3, 4, 5]
    assert rb.context[:, 0].tolist() == [20, 30, 40, 50]


def test_invalid_construction_is_refused() -> None:
    """A zero-length window is a configuration error."""
    with pytest.raises(ValueError, match="must be positive"):
        WindowStore(0, 2, max_patients=1, idle_ttl_s=1.0, max_gap_s=1.0)


def _random_run(rng: np.random.Generator, n: int, patients: int) -> list[tuple[str, float, int]]:
    """Samples of a few patients, mostly in order, with duplicates, late ones, seq jumps,
    time gaps and unknown patients."""
    state = {f"p{i}": (float(rng.integers(0, 3)), int(rng.integers(0, 3))) for i in range(patients)}
    out: list[tuple[str, float, int]] = []
    for _ in range(n):
        pid = f"p{int(rng.integers(0, patients))}"
        t, seq = state[pid]
        kind = rng.random()
        if kind < 0.05:
            out.append((pid, t, seq))  # duplicate of the last one
            continue
        if kind < 0.07:
            out.append((pid, t - 1.0, seq - 1))  # earlier time and seq: late
            continue
        if kind < 0.08:
            t, seq = t - 1.0, seq + 1  # the clock stepped back
            state[pid] = (t, seq)
            out.append((pid, t, seq))
            continue
        if kind < 0.09:
            t, seq = t + 1.0, int(rng.integers(0, 3))  # the device restarted
            state[pid] = (t, seq)
            out.append((pid, t, seq))
            continue
        if kind < 0.095:
            out.append((pid, t + 0.5, 2**62))  # one stray huge seq
            state[pid] = (t + 0.5, seq)
            continue
        t += 30.0 if kind < 0.10 else 1.0  # sometimes a gap over max_gap_s
        seq += 3 if kind < 0.13 else 1
        state[pid] = (t, seq)
        out.append((pid, t, seq))
    return out


def _state(ws: WindowStore) -> tuple[list[str], dict[str, tuple[object, ...]]]:
    out: dict[str, tuple[object, ...]] = {}
    for pid in ws.patients():
        slot = ws.table.get(pid)
        assert slot is not None
        start, count = ws._start[slot], ws._count[slot]
        window = ws._slab[slot, start : start + count].tolist()
        out[pid] = (
            window,
            ws._last_seq[slot],
            ws._last_t[slot],
            ws._last_seen[slot],
            ws._anchor[slot],
            ws._lead[slot],
        )
    return ws.patients(), out


@pytest.mark.parametrize("seed", range(12))
def test_a_batch_push_equals_pushing_each_sample_alone(seed: int) -> None:
    """`push` of a batch gives each sample what pushing it alone (a batch of one) gives, in
    order: the same contexts, windows, bookkeeping and least-recently-seen order, whether a
    sample is stored plainly or by the sample-by-sample policy; batches hold more than SLACK
    samples of a patient and skipped ones."""
    rng = np.random.default_rng(seed)
    patients = int(rng.integers(1, 5))
    one, bulk = store(max_patients=8), store(max_patients=8)
    samples = _random_run(rng, 300, patients)
    cuts = sorted(rng.choice(np.arange(1, 300), size=5, replace=False).tolist())
    taken, left = 0, 0
    for run in np.split(np.array(samples, dtype=object), cuts):
        run = [(str(pid), float(t), int(seq)) for pid, t, seq in run]
        values = np.array([[seq, t * 0.5] for _, t, seq in run], dtype=np.float64)
        now = [t for _, t, _ in run]
        pids = [pid for pid, _, _ in run]
        expected = [
            push_one(one, p, t, s, v, n) for (p, t, s), v, n in zip(run, values, now, strict=False)
        ]
        skip = {"p1"} if seed % 3 == 0 else set()
        pushed = bulk.push(pids, [t for _, t, _ in run], [s for _, _, s in run], values, now, skip)
        plain = pushed.plain
        assert pushed.contexts.shape == (int(plain.sum()), W, F)
        assert set(pushed.rest) == set(np.flatnonzero(~plain).tolist())
        taken, left = taken + int(plain.sum()), left + int((~plain).sum())
        for i, result in enumerate(expected):
            got = pushed.result(i)
            if plain[i]:
                assert result.outcome == "ready"
                assert not result.gap_reset
                assert pids[i] not in skip
                assert got.missing == result.missing
                assert got.gap == pytest.approx(result.gap, rel=1e-12)
            else:  # everything but the context (an array) compared here
                assert got._replace(context=None) == result._replace(context=None)
            assert got.outcome == result.outcome
            if result.context is None:
                assert got.context is None
            else:
                assert got.context is not None
                np.testing.assert_array_equal(got.context, result.context)
        assert _state(bulk) == _state(one)
    assert taken > 0
    assert left > 0


def test_push_takes_a_plain_batch_whole_and_at_most_slack_per_patient() -> None:
    """Full windows and consecutive samples: all plain, up to SLACK of each patient (two
    patients, so that the batch is long enough for the array path)."""
    ws = store(max_gap_s=1e9)
    feed(ws, "a", list(range(W)))
    feed(ws, "b", list(range(W)))
    n = SLACK + 3
    seqs = list(range(W, W + n)) * 2
    pids = ["a"] * n + ["b"] * n
    plain, contexts, missing, rest, gaps = ws.push(
        pids, [float(s) for s in seqs], seqs, np.stack([vals(s) for s in seqs]), [0.0] * 2 * n
    )
    assert plain.tolist() == ([True] * SLACK + [False] * 3) * 2
    assert missing.tolist() == [0] * 2 * SLACK
    assert gaps.tolist() == [1.0] * 2 * SLACK
    assert [rest[i].outcome for i in sorted(rest)] == ["ready"] * 6
    assert ws.patients() == ["a", "b"]
    np.testing.assert_array_equal(contexts[-1][:, 0], np.arange(SLACK - 1, SLACK - 1 + W))


def test_the_store_keeps_its_attributes_in_slots() -> None:
    """No instance dict: past 30 attribute names CPython 3.11 gives each instance a plain
    dict and every attribute load in `push` becomes a dict lookup (docs/benchmarks.md)."""
    ws = store()
    assert not hasattr(ws, "__dict__")
    with pytest.raises(AttributeError):
        ws.undeclared = 1  # type: ignore[attr-defined]


def test_a_slow_streams_first_interval_is_its_rate_not_a_gap() -> None:
    """With the model's period, the second sample of a once-a-minute stream goes on in the
    window (no reset: there is no interval to judge it by); a later silence of 30 of its
    own intervals still resets. Without a period the first interval is judged as any."""
    store = WindowStore(4, 1, max_patients=2, idle_ttl_s=1e9, max_gap_s=30.0, period_s=1.0)
    values = np.zeros((1, 1))
    outcomes = []
    for i, t in enumerate([0.0, 60.0, 120.0, 180.0, 240.0]):
        r = store.push(["p"], [t], [i], values, [t]).result(0)
        outcomes.append((r.outcome, r.gap_reset))
    assert outcomes == [("warming_up", False)] * 4 + [("ready", False)]
    late = store.push(["p"], [240.0 + 60 * 31], [5], values, [240.0 + 60 * 31]).result(0)
    assert late.gap_reset
    plain = WindowStore(4, 1, max_patients=2, idle_ttl_s=1e9, max_gap_s=30.0)
    plain.push(["p"], [0.0], [0], values, [0.0])
    assert plain.push(["p"], [60.0], [1], values, [60.0]).result(0).gap_reset


def test_the_store_admits_into_the_table_it_is_given_and_releases_on_eviction() -> None:
    """The store's patients are the table's: an admission takes a slot there, an eviction
    frees it (its generation moves on); a table with another limit, or not empty, is
    refused."""
    from monitor.core.slots import SlotMap

    with pytest.raises(ValueError, match="limit"):
        WindowStore(3, 1, max_patients=4, idle_ttl_s=5.0, max_gap_s=30.0, patients=SlotMap(3))
    busy = SlotMap(4)
    busy.admit("x")
    with pytest.raises(ValueError, match="empty"):
        WindowStore(3, 1, max_patients=4, idle_ttl_s=5.0, max_gap_s=30.0, patients=busy)
    table = SlotMap(2)
    store = WindowStore(3, 1, max_patients=2, idle_ttl_s=5.0, max_gap_s=30.0, patients=table)
    one = np.zeros((1, 1))
    store.push(["a"], [0.0], [0], one, [0.0])
    store.push(["b"], [1.0], [0], one, [1.0])
    slots = {pid: table.get(pid) for pid in ("a", "b")}
    assert set(table.index) == {"a", "b"}
    born = table.generation.copy()
    # Full: "c" evicts every idle patient and takes one of their slots.
    result = store.push(["c"], [10.0], [0], one, [10.0]).result(0)
    assert result.evicted == ("a", "b")
    assert "a" not in table
    assert "b" not in table
    assert table.get("c") in set(slots.values())
    for slot in slots.values():
        assert slot is not None
        assert table.generation[slot] > born[slot]
    assert len(table) == len(store) == 1


@pytest.mark.parametrize("batched", [False, True])
def test_a_ready_sample_carries_its_interval_over_its_streams_own(batched: bool) -> None:
    """`gap`: 1 for a steady 1 Hz stream, 5 after a 5 s silence (four samples missing),
    0.2 for the next (1 s after a 5 s interval: only a ratio of 2 or more widens the
    scale); a once-a-minute stream on the 1 s model is steady at 1, and 3 after
    a 3-minute silence. Alone and in a batch alike."""
    ws = store(max_patients=4, max_gap_s=30.0, period_s=1.0)
    times = [float(i) for i in range(W + 3)] + [W + 7.0, W + 8.0]
    slow = [60.0 * i for i in range(W + 2)] + [60.0 * (W + 4)]
    got: dict[str, list[float]] = {}
    for pid, ts in (("fast", times), ("slow", slow)):
        rows = np.stack([vals(i) for i in range(len(ts))])
        if batched:
            pushed = ws.push([pid] * len(ts), ts, list(range(len(ts))), rows, ts)
            results = [pushed.result(i) for i in range(len(ts))]
        else:
            results = [push_one(ws, pid, t, i, rows[i], t) for i, t in enumerate(ts)]
        got[pid] = [round(r.gap, 6) for r in results if r.outcome == "ready"]
    assert got["fast"] == [1.0, 1.0, 1.0, 5.0, 0.2]
    assert got["slow"] == [1.0, 1.0, 3.0]
