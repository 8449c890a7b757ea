"""Slot map and batch rounds (monitor/core/slots.py)."""

from __future__ import annotations

import numpy as np
import pytest

from monitor.core.slots import Rows, SlotMap, rounds


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


def test_slot_map_assigns_reuses_and_grows() -> None:
    """New ids get slots (first row reported once), freed slots are reused with a new
    generation, capacity doubles, and the placement carries the batch's rounds."""
    m = SlotMap()
    slots, parts, new = m.assign(["a", "b", "a"])
    assert slots.tolist()[0] == slots.tolist()[2] != slots.tolist()[1]
    assert new == [0, 1]
    assert [p.tolist() for p in parts] == [[0, 1], [2]]
    assert m.capacity == 16
    assert len(m) == 2
    freed = m.release("a")
    assert freed is not None
    assert m.generation[freed] == 1
    assert m.release("a") is None
    slots, _, new = m.assign(["b", "c"])
    assert new == [1]
    assert slots.tolist()[1] == freed
    assert m.generation[freed] == 2
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
