"""The patient table: a slot per patient for state kept in arrays, and the rounds a batch
is scored in.

The window store, `ResidualScale`, `AlarmFollow`, `Detector` and `StuckSensors` keep each
patient's state in rows of preallocated arrays, so a batch is handled with a few vectorised
operations. The pipeline gives them one `SlotMap` with a limit (`window.max_patients`): the
window store admits patients into it and releases them (eviction), and the scoring side
places each batch once (`SlotMap.place`, which admits nobody), passing the `Placement` to
the others; a component built alone makes its own table and places with `assign`, which
admits. A slot's generation changes each time it is given to a patient and each time it is
freed, so each scoring component sees, by comparing its own copy (`Rows`), which of a
batch's slots are new to it and resets them, whoever placed them (the window store, a
snapshot restore).

A batch may hold one patient several times (offline replay at full speed); its rows must
then be applied in order, so a batch is split into rounds of distinct patients (`rounds`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple, TypeVar

import numpy as np
import numpy.typing as npt

from monitor.core.types import BoolArray

__all__ = [
    "Grouped",
    "IntpArray",
    "Placement",
    "Rows",
    "SlotMap",
    "grown",
    "last_observed",
    "rounds",
]

IntpArray = npt.NDArray[np.intp]
_T = TypeVar("_T", bound=np.generic)


class Placement(NamedTuple):
    """A batch placed in the patient table.

    Attributes:
        slots: The slot of each row.
        parts: The rows in rounds of distinct slots (`rounds`).
        new_rows: The rows whose patient was given a new slot (its first row only).
        absent: The rows whose patient holds no slot (`SlotMap.place` only: it admits
            nobody); their slot is -1 and they are in no round.
    """

    slots: IntpArray
    parts: list[IntpArray]
    new_rows: list[int]
    absent: tuple[int, ...] = ()


class SlotMap:
    """Patient id -> row of the owners' state arrays; freed rows are reused.

    An owner grows its arrays to `capacity` rows before indexing them with a placement, and
    resets the slots whose `generation` differs from its own copy (new to it).

    Args:
        limit: Most patients held at once (None: no limit); `capacity` never exceeds it.
            `admit` into a full table is an error: its owner decides whom to release.
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError("limit must be positive")
        self.limit = limit
        #: Patient id -> slot. Read-only for callers (the window store's per-sample lookup).
        self.index: dict[str, int] = {}
        self._free: list[int] = []
        self.capacity = 0
        #: Per slot, how many times it was given to a patient or freed (0: never given).
        self.generation = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.index)

    def __contains__(self, patient_id: object) -> bool:
        return patient_id in self.index

    @property
    def room(self) -> int:
        """Patients that can still be admitted (a large number without a limit)."""
        return (1 << 62) if self.limit is None else self.limit - len(self.index)

    def get(self, patient_id: str) -> int | None:
        """Return the patient's slot, or None if it has none."""
        return self.index.get(patient_id)

    def admit(self, patient_id: str) -> int:
        """Give a patient not held a slot (a new generation of it); return the slot.

        Raises:
            ValueError: The patient is held already, or the table is full.
        """
        if patient_id in self.index:
            raise ValueError(f"patient {patient_id!r} holds a slot already")
        return self._take(patient_id)  # raises when the table is full

    def place(self, patient_ids: Sequence[str]) -> Placement:
        """Place a batch of held patients: each row's slot and its rounds, admitting nobody.

        Rows whose patient holds no slot (evicted while its sample was in flight) are
        listed in `Placement.absent`, with slot -1, and left out of the rounds.
        """
        get = self.index.get
        found = [get(pid, -1) for pid in patient_ids]
        slots = np.asarray(found, dtype=np.intp)
        if -1 not in found:
            return Placement(slots, rounds(slots), [])
        absent = tuple(row for row, slot in enumerate(found) if slot < 0)
        held = np.flatnonzero(slots >= 0)
        parts = [held[part] for part in rounds(slots[held])] if held.size else []
        return Placement(slots, parts, [], absent)

    def items(self) -> list[tuple[str, int]]:
        """Return every (patient id, slot) pair held (snapshots read the state by slot)."""
        return list(self.index.items())

    def assign(self, patient_ids: Sequence[str]) -> Placement:
        """Place a batch: each row's slot (allotting slots to unknown patients), its rounds
        and the rows whose patient was given a new slot."""
        get = self.index.get
        found = [get(pid) for pid in patient_ids]
        new_rows: list[int] = []
        if None in found:
            for row, slot in enumerate(found):
                if slot is None:
                    pid = patient_ids[row]
                    slot = self.index.get(pid)
                    if slot is None:
                        slot = self._take(pid)
                        new_rows.append(row)
                    found[row] = slot
        slots = np.asarray(found, dtype=np.intp)
        return Placement(slots, rounds(slots), new_rows)

    def release(self, patient_id: str) -> int | None:
        """Free the patient's slot; return it (None if it had none). Its generation moves
        on, so an owner that keeps a note of the slot sees that its patient left."""
        slot = self.index.pop(patient_id, None)
        if slot is not None:
            self._free.append(slot)
            self.generation[slot] += 1
        return slot

    def _take(self, patient_id: str) -> int:
        if not self._free:
            old = self.capacity
            self.capacity = max(16, old * 2)
            if self.limit is not None:
                self.capacity = min(self.capacity, self.limit)
            self._free = list(range(self.capacity - 1, old - 1, -1))
            self.generation = grown(self.generation, self.capacity)
            if not self._free:
                raise ValueError(f"the patient table is full ({self.limit} patients)")
        slot = self._free.pop()
        self.index[patient_id] = slot
        self.generation[slot] += 1
        return slot


class Rows:
    """One component's view of a (shared) patient table: the slots it holds state for.

    A slot is held when the component reset it, or imported into it, for its current
    patient: its generation here equals the table's. The component grows its arrays when
    `grow` says so and resets the slots that `stale` names before using them.

    Args:
        table: The patient table.
    """

    def __init__(self, table: SlotMap) -> None:
        self.table = table
        self._gen = np.zeros(0, dtype=np.int64)

    def __len__(self) -> int:
        return len(self.items())

    def grow(self) -> int | None:
        """The table's capacity when the component's arrays must grow to it, else None."""
        cap = self.table.capacity
        if self._gen.shape[0] >= cap:
            return None
        self._gen = grown(self._gen, cap)
        return cap

    def stale(self, slots: IntpArray) -> BoolArray | None:
        """Which of `slots` the component does not hold (None: it holds them all)."""
        stale: BoolArray = self._gen[slots] != self.table.generation[slots]
        # np.count_nonzero: far cheaper than .any() on a small batch.
        return stale if np.count_nonzero(stale) else None

    def hold(self, slots: IntpArray) -> None:
        """Mark `slots` as reset (or imported) for their current patients."""
        self._gen[slots] = self.table.generation[slots]

    def slot_of(self, patient_id: str) -> int | None:
        """The patient's slot if the component holds its state, else None."""
        slot = self.table.get(patient_id)
        if slot is None or slot >= self._gen.shape[0]:
            return None
        return slot if self._gen[slot] == self.table.generation[slot] else None

    def items(self) -> list[tuple[str, int]]:
        """Every (patient id, slot) pair whose state the component holds."""
        gen, mine = self.table.generation, self._gen
        held = mine.shape[0]
        return [(p, s) for p, s in self.table.items() if s < held and mine[s] == gen[s]]


class Grouped(NamedTuple):
    """A batch's rows as each slot's rows in order, one slot after another (for one pass
    over a batch that holds patients several times).

    Attributes:
        order: The rows in that order (a stable sort by slot).
        slots: Each of them's slot.
        start: ``(n, 1)``: the position of each one's slot's first row.
        last: The positions of each slot's last row.
    """

    order: IntpArray
    slots: IntpArray
    start: IntpArray
    last: IntpArray

    @classmethod
    def of(cls, slots: IntpArray) -> Grouped:
        """Group the rows of a batch placed in `slots`."""
        n = slots.shape[0]
        order = np.argsort(slots, kind="stable")
        gs = slots[order]
        head = np.ones(n, dtype=bool)
        np.not_equal(gs[1:], gs[:-1], out=head[1:])
        start = np.maximum.accumulate(np.where(head, np.arange(n), 0))[:, None]
        tail = np.ones(n, dtype=bool)
        tail[:-1] = head[1:]
        return cls(order, gs, start, np.flatnonzero(tail))


def last_observed(seen: BoolArray) -> IntpArray:
    """Per cell of `seen` (rows in time order), the row of the last True at or before it
    along the first axis, -1 before the first: where a value carried forward comes from.

    The one forward fill of the project: the window store's carried vitals, the lost
    vitals' intervals, the trainer's held slow vitals and persistence's last sent value.
    """
    rows = np.arange(seen.shape[0]).reshape((-1,) + (1,) * (seen.ndim - 1))
    out: IntpArray = np.where(seen, rows, -1)
    np.maximum.accumulate(out, axis=0, out=out)
    return out


def rounds(slots: IntpArray) -> list[IntpArray]:
    """Split a batch's rows into rounds of distinct slots, each in row order.

    Round k holds the rows that are their slot's (k+1)-th in the batch, so applying the
    rounds one after the other applies every slot's rows in order.
    """
    n = slots.shape[0]
    if n <= 1:
        return [np.arange(n, dtype=np.intp)]
    order = np.argsort(slots, kind="stable")
    ordered = slots[order]
    first = np.empty(n, dtype=bool)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    starts = np.flatnonzero(first)
    if starts.shape[0] == n:  # every slot once
        return [np.arange(n, dtype=np.intp)]
    rank = np.empty(n, dtype=np.intp)  # each row's place among its slot's rows
    rank[order] = np.arange(n) - np.repeat(starts, np.diff(np.r_[starts, n]))
    # Rows by rank, in row order within a rank (stable), cut where the rank changes.
    by_rank = np.argsort(rank, kind="stable")
    return np.split(by_rank, np.cumsum(np.bincount(rank))[:-1])


def grown(array: npt.NDArray[_T], rows: int) -> npt.NDArray[_T]:
    """Return a copy of `array` with `rows` rows (zeros after the old ones)."""
    out = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
    out[: array.shape[0]] = array
    return out
