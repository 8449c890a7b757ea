"""Slot map and batch rounds (monitor/core/slots.py)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.slots import Grouped, Rows, SlotMap, rounds


@pytest.mark.parametrize(
    ("slots", "expected"),
    [
        ([], [[]]),
        ([4], [[0]]),
        ([1, 2, 3], [[0, 1, 2]]),
        ([1, 1, 1], [[0], [1], [2]]),
        ([5, 2, 5, 7, 2, 5], [[0, 1, 3], [2, 4], [5]]),
    ],
)
def test_rounds_split_rows_by_occurrence_in_row_order(
    slots: list[int], expected: list[list[int]]
) -> None:
    """Round k holds each slot's (k+1)-th row; every round keeps row order."""
    got = rounds(np.asarray(slots, dtype=np.intp))
    assert [r.tolist() for r in got] == expected


def test_grouped_orders_each_slot_s_rows_and_marks_its_first_and_last() -> None:
    """Rows of slots 4, 1, 4, 2, 1, 4: slot 1's rows (1, 4), then 2's (3), then 4's (0, 2,
    5); each row's slot's first position, and each slot's last position."""
    order, slots, start, last = Grouped.of(np.array([4, 1, 4, 2, 1, 4], dtype=np.intp))
    assert order.tolist() == [1, 4, 3, 0, 2, 5]
    assert slots.tolist() == [1, 1, 2, 4, 4, 4]
    assert start[:, 0].tolist() == [0, 0, 2, 3, 3, 3]
    assert last.tolist() == [1, 2, 5]
    one = Grouped.of(np.array([7], dtype=np.intp))
    assert (one.order.tolist(), one.start.tolist(), one.last.tolist()) == ([0], [[0]], [0])


def test_slot_map_assigns_reuses_and_grows() -> None:
    """New ids get slots (first row reported once), freed slots are reused with a new
    generation, capacity doubles, and the placement carries the batch's rounds."""
    m = SlotMap()
    slots, parts, new, absent = m.assign(["a", "b", "a"])
    assert absent == ()
    assert slots.tolist()[0] == slots.tolist()[2] != slots.tolist()[1]
    assert new == [0, 1]
    assert [p.tolist() for p in parts] == [[0, 1], [2]]
    assert m.capacity == 16
    assert len(m) == 2
    freed = m.release("a")
    assert freed is not None
    assert m.generation[freed] == 2  # given, then freed
    assert m.release("a") is None
    slots, _, new, _ = m.assign(["b", "c"])
    assert new == [1]
    assert slots.tolist()[1] == freed
    assert m.generation[freed] == 3
    m.assign([f"x{i}" for i in range(20)])
    assert m.capacity == 32
    assert len(m) == 22
    assert m.get("c") == freed
    assert m.get("a") is None


def test_rows_hold_only_what_the_owner_reset_for_the_current_patient() -> None:
    """A component's rows: a slot placed by someone else is stale until the component holds
    it; after a release and reuse by another patient it is stale again."""
    table = SlotMap()
    rows = Rows(table)
    slots = table.assign(["a", "b"]).slots
    assert rows.grow() == 16
    assert rows.grow() is None
    stale = rows.stale(slots)
    assert stale is not None
    assert stale.tolist() == [True, True]
    rows.hold(slots[:1])
    assert rows.slot_of("a") == slots[0]
    assert rows.slot_of("b") is None
    assert rows.items() == [("a", int(slots[0]))]
    table.release("a")
    reused = table.assign(["c"]).slots
    assert reused.tolist() == [slots[0]]
    assert rows.slot_of("c") is None
    rows.hold(table.assign(["b", "c"]).slots)
    assert rows.stale(table.assign(["b", "c"]).slots) is None
    assert len(rows) == 2


def test_a_limited_table_admits_up_to_its_limit_and_places_without_admitting() -> None:
    """With a limit, capacity stops there and a full table refuses an admission; `place`
    gives held patients their slots and lists the others as absent, out of every round."""
    m = SlotMap(limit=20)
    for i in range(20):
        m.admit(f"p{i}")
    assert m.capacity == 20
    assert m.room == 0
    with pytest.raises(ValueError, match="full"):
        m.admit("late")
    with pytest.raises(ValueError, match="full"):
        m.assign(["late"])
    with pytest.raises(ValueError, match="already"):
        m.admit("p3")
    placed = m.place(["p1", "gone", "p1", "p2"])
    assert placed.absent == (1,)
    assert placed.new_rows == []
    assert placed.slots.tolist() == [m.get("p1"), -1, m.get("p1"), m.get("p2")]
    assert [p.tolist() for p in placed.parts] == [[0, 3], [2]]
    assert "gone" not in m
    everyone = m.place(["p4", "p5"])
    assert everyone.absent == ()
    assert [p.tolist() for p in everyone.parts] == [[0, 1]]
    assert m.place(["gone"]).parts == []
