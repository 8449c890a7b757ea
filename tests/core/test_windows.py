"""The window store: warm-up, context windows, order and gap policy, cap and eviction."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.windows import PushResult, WindowStore

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
    )


def vals(seq: int) -> np.ndarray:
    return np.array([seq, 100 + seq], dtype=np.float64)


def feed(ws: WindowStore, pid: str, seqs: list[int], now: float = 0.0) -> list[PushResult]:
    return [ws.push(pid, float(s), s, vals(s), now) for s in seqs]


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
    second = ws.push("a", 6.0, 6, vals(6), 0.0).context
    assert second is not None
    assert second[:, 0].tolist() == [2, 3, 4, 5]
    assert first[:, 0].tolist() == [-1, -1, -1, -1]


@pytest.mark.parametrize(
    ("t", "seq", "outcome"),
    [
        (5.0, 4, "duplicate"),
        (4.0, 4, "duplicate"),
        (3.0, 3, "late"),
        (9.0, 2, "late"),
        (3.5, 5, "late"),
    ],
)
def test_duplicates_and_late_samples_are_dropped(t: float, seq: int, outcome: str) -> None:
    """seq == last is a duplicate, seq < last or time going back is late; window untouched."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4])
    assert ws.push("a", t, seq, vals(99), 1.0).outcome == outcome
    assert ws.last_seen("a") == 0.0
    nxt = ws.push("a", 5.0, 5, vals(5), 2.0)
    assert nxt.outcome == "ready"
    assert nxt.missing == 0
    assert nxt.context is not None
    assert nxt.context[:, 0].tolist() == [1, 2, 3, 4]


def test_sequence_jump_is_accepted_and_counted() -> None:
    """A seq jump within max_gap_s is accepted and reports the skipped numbers."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4])
    result = ws.push("a", 5.0, 9, vals(9), 0.0)
    assert (result.outcome, result.missing, result.gap_reset) == ("ready", 4, False)


def test_time_gap_resets_the_window() -> None:
    """A gap above max_gap_s restarts warm-up with this sample as the first of the window."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4, 5])
    result = ws.push("a", 5.0 + 10.5, 6, vals(6), 0.0)
    assert (result.outcome, result.gap_reset, result.missing, result.context) == (
        "warming_up",
        True,
        0,
        None,
    )
    after = [ws.push("a", 16.0 + i, 7 + i, vals(7 + i), 0.0) for i in range(4)]
    assert [r.outcome for r in after] == ["warming_up"] * 3 + ["ready"]
    assert after[-1].context is not None
    assert after[-1].context[:, 0].tolist() == [6, 7, 8, 9]


def test_gap_exactly_at_limit_keeps_the_window() -> None:
    """A gap equal to max_gap_s is not a reset."""
    ws = store()
    feed(ws, "a", [1, 2, 3, 4])
    assert ws.push("a", 14.0, 5, vals(5), 0.0).gap_reset is False


def test_cap_refuses_new_patients_while_others_are_fresh() -> None:
    """Past max_patients a new id is refused_cap and known patients keep working."""
    ws = store(max_patients=2)
    ws.push("a", 1.0, 1, vals(1), now=0.0)
    ws.push("b", 1.0, 1, vals(1), now=0.0)
    refused = ws.push("c", 1.0, 1, vals(1), now=30.0)
    assert (refused.outcome, refused.evicted) == ("refused_cap", ())
    assert len(ws) == 2
    assert "c" not in ws
    assert ws.push("a", 2.0, 2, vals(2), now=30.0).outcome == "warming_up"


def test_cap_evicts_idle_patients_to_admit_a_new_one() -> None:
    """A new id past the cap evicts every patient idle longer than the TTL and takes a slot."""
    ws = store(max_patients=3, idle_ttl_s=60.0)
    ws.push("a", 1.0, 1, vals(1), now=0.0)
    ws.push("b", 1.0, 1, vals(1), now=10.0)
    ws.push("c", 1.0, 1, vals(1), now=100.0)
    result = ws.push("d", 1.0, 1, vals(1), now=100.0)
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
    results = [ws.push("c", float(s), s, vals(s + 50), now=101.0) for s in range(1, 6)]
    assert [r.outcome for r in results] == ["warming_up"] * 4 + ["ready"]
    assert results[-1].context is not None
    assert results[-1].context[:, 0].tolist() == [51, 52, 53, 54]
    assert len(ws) == 2


def test_stale_lists_patients_silent_past_the_limit() -> None:
    """stale(now, limit) names patients whose last accepted sample is older than limit."""
    ws = store()
    ws.push("a", 1.0, 1, vals(1), now=0.0)
    ws.push("b", 1.0, 1, vals(1), now=5.0)
    ws.push("a", 2.0, 2, vals(2), now=8.0)
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
    assert ws.push("a", 6.0, 6, vals(6), 0.0).outcome == "warming_up"


def test_patients_are_independent() -> None:
    """Interleaved patients each get their own window contents."""
    ws = store()
    for s in range(1, 6):
        ws.push("a", float(s), s, vals(s), 0.0)
        ws.push("b", float(s), s, vals(10 * s), 0.0)
    ra = ws.push("a", 6.0, 6, vals(6), 0.0)
    rb = ws.push("b", 6.0, 6, vals(60), 0.0)
    assert ra.context is not None
    assert rb.context is not None
    assert ra.context[:, 0].tolist() == [2, 3, 4, 5]
    assert rb.context[:, 0].tolist() == [20, 30, 40, 50]


def test_invalid_construction_is_refused() -> None:
    """A zero-length window is a configuration error."""
    with pytest.raises(ValueError, match="must be positive"):
        WindowStore(0, 2, max_patients=1, idle_ttl_s=1.0, max_gap_s=1.0)
