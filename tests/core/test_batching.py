"""The micro-batcher: flush on size or age, arrival order, bounded pending with shedding."""

from __future__ import annotations

import pytest

from monitor.core.batching import MicroBatcher


def batcher(
    max_batch: int = 4, max_wait_s: float = 0.005, max_pending: int = 100
) -> MicroBatcher[str]:
    return MicroBatcher(max_batch, max_wait_s, max_pending)


def test_due_when_size_reached() -> None:
    """A batch is due as soon as max_batch items wait, whatever their age."""
    b = batcher(max_batch=3)
    for i in range(2):
        b.add(["p"], [f"x{i}"], [0.0])
    assert b.due(now=0.0) is False
    b.add(["p"], ["x2"], [0.0])
    assert b.due(now=0.0) is True


@pytest.mark.parametrize(
    ("now", "due"), [(1.0, False), (1.0049, False), (1.005, True), (2.0, True)]
)
def test_due_when_oldest_waited_max_wait(now: float, due: bool) -> None:
    """A lone item is due once it has waited max_wait_s (time injected)."""
    b = batcher(max_wait_s=0.005)
    b.add(["p"], ["x"], [1.0])
    assert b.due(now) is due


def test_deadline_tracks_the_oldest_item() -> None:
    """deadline() is the oldest pending item's arrival plus max_wait_s, None when empty."""
    b = batcher(max_batch=2, max_wait_s=0.5)
    assert b.deadline() is None
    assert b.due(now=100.0) is False
    b.add(["a"], ["a1"], [1.0])
    b.add(["b"], ["b1"], [1.25])
    b.add(["c"], ["c1"], [1.5])
    assert b.deadline() == 1.5
    assert b.take(1) == ["a1"]
    assert b.deadline() == 1.75
    b.take(10)
    assert b.deadline() is None


def test_take_returns_arrival_order_and_keeps_every_item_of_a_patient() -> None:
    """Several pending items of one patient are all taken, in arrival order."""
    b = batcher(max_batch=10)
    order = [("a", "a1"), ("b", "b1"), ("a", "a2"), ("a", "a3"), ("c", "c1")]
    for key, item in order:
        assert b.add([key], [item], [0.0]) == []
    assert len(b) == 5
    assert b.take(3) == ["a1", "b1", "a2"]
    assert b.take(10) == ["a3", "c1"]
    assert len(b) == 0
    assert b.take(10) == []


def test_no_shedding_up_to_max_pending() -> None:
    """Exactly max_pending items are held without shedding."""
    b = batcher(max_pending=5)
    shed = [b.add(["a"], [f"a{i}"], [0.0]) for i in range(5)]
    assert shed == [[]] * 5
    assert len(b) == 5


def test_shedding_prefers_superseded_items() -> None:
    """Over max_pending, the oldest item of a patient with a newer one pending goes first."""
    b = batcher(max_pending=3)
    b.add(["a"], ["a1"], [0.0])
    b.add(["b"], ["b1"], [0.0])
    b.add(["b"], ["b2"], [0.0])
    assert b.add(["c"], ["c1"], [0.0]) == ["b1"]
    assert b.take(10) == ["a1", "b2", "c1"]


def test_shedding_falls_back_to_the_oldest_overall() -> None:
    """With one item per patient, the oldest item overall is shed."""
    b = batcher(max_pending=3)
    for key in "abc":
        b.add([key], [f"{key}1"], [0.0])
    assert b.add(["d"], ["d1"], [0.0]) == ["a1"]
    assert b.take(10) == ["b1", "c1", "d1"]


def test_newest_window_per_patient_survives_sustained_overload() -> None:
    """Under a long overload each patient keeps its newest item; older ones are shed in order."""
    b = batcher(max_pending=3)
    shed: list[str] = []
    for i in range(1000):
        for key in "abc":
            shed += b.add([key], [f"{key}{i}"], [float(i)])
    assert sorted(b.take(10)) == ["a999", "b999", "c999"]
    assert len(shed) == 3000 - 3
    assert shed[:4] == ["a0", "b0", "c0", "a1"]
    assert len(b._queue) <= 2 * 3 + 64


def test_taken_items_are_never_shed() -> None:
    """An item already taken cannot be shed later, even if it was superseded."""
    b = batcher(max_pending=2)
    b.add(["a"], ["a1"], [0.0])
    assert b.take(1) == ["a1"]
    b.add(["a"], ["a2"], [0.0])
    b.add(["b"], ["b1"], [0.0])
    assert b.add(["c"], ["c1"], [0.0]) == ["a2"]
    assert b.take(10) == ["b1", "c1"]


@pytest.mark.parametrize(
    ("max_batch", "max_wait_s", "max_pending"), [(0, 0.1, 1), (1, -1.0, 1), (1, 0.1, 0)]
)
def test_invalid_settings_are_refused(max_batch: int, max_wait_s: float, max_pending: int) -> None:
    """Zero batch size, negative wait or zero capacity is a configuration error."""
    with pytest.raises(ValueError, match="max_batch"):
        MicroBatcher[str](max_batch, max_wait_s, max_pending)


@pytest.mark.parametrize("arrival", [0.1, 1.0, 1_764_000_000.123, 7.3])
def test_due_at_its_own_deadline(arrival: float) -> None:
    """A shell that sleeps until deadline() finds the batch due then (no float drift)."""
    b = batcher(max_wait_s=0.005)
    b.add(["p"], ["x"], [arrival])
    deadline = b.deadline()
    assert deadline is not None
    assert b.due(deadline) is True


@pytest.mark.parametrize("max_pending", [5, 12, 1000])
def test_adding_a_batch_equals_adding_its_items_one_at_a_time(max_pending: int) -> None:
    """Same shed items, same queue (take order), same pending count, with and without
    shedding, whatever was already queued."""
    keys = [f"p{i % 3}" for i in range(10)]
    one, many = batcher(max_pending=max_pending), batcher(max_pending=max_pending)
    for b in (one, many):
        b.add(["p1"], ["old"], [0.0])
    shed_one = [s for i, k in enumerate(keys) for s in one.add([k], [f"x{i}"], [float(i)])]
    shed_many = many.add(keys, [f"x{i}" for i in range(10)], [float(i) for i in range(10)])
    assert shed_many == shed_one
    assert (max_pending < 11) == bool(shed_one)
    assert len(many) == len(one) == min(11, max_pending)
    assert many.deadline() == one.deadline()
    for i in range(max_pending):  # then shedding from what the batch queued
        assert many.add(["p0"], [f"y{i}"], [20.0]) == one.add(["p0"], [f"y{i}"], [20.0])
    assert many.take(100_000) == one.take(100_000)
