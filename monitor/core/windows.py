"""Per-patient rolling windows in one preallocated slab, with the order, gap and cap policy.

Each patient owns one row of a `(max_patients, window + SLACK, F)` float32 slab: its window
is `window` consecutive samples of that row, oldest first, and a new sample is written just
after them; once the row is used up, the window moves back to its start (one copy every
`SLACK` samples). A window is therefore always one contiguous slice, so it is copied out in
one call, and `push_ready` copies the windows of a whole run of samples in one gather.
`np.zeros` is lazily backed by the OS, so an idle capacity costs address space, not
resident memory; freed slots are reused. The policy (docs/detection.md):

* seq equal to the last accepted seq: `duplicate`; lower: `late`; both dropped, window untouched.
* higher seq but an earlier sample time: `late` (dropped).
* a time gap above `max_gap_s`: the window restarts with this sample (`gap_reset`). With
  `period_s` (the model's sample period) the limit stretches with a stream slower than
  the model: it is `max_gap_s` times the patient's previous interval over `period_s` when
  that is above 1, so once-a-minute numerics served by a 1 Hz model are not reset at every
  sample (the same stretch applies to `stale`).
* seq jumps by more than one: accepted; `missing` says how many numbers were skipped.
* a new patient when the store is full: the least recently seen patient is evicted if idle
  for longer than `idle_ttl_s`, else the sample is `refused_cap`.

`push` returns, when the window was already full, a copy of the window ending at the
previous sample: the model input that predicts this sample.

With `masked` (a model that takes an observed mask, docs/detection.md "Partial vital
sets") a sample may lack vitals (NaN). Each stored row then holds ``2F`` values: the
vitals, a missing one carried forward from the patient's previous sample, and an observed
flag (1.0 or 0.0) per vital. A vital seen for the first time in a window is written back
over the window's earlier rows (its flags stay 0), so a window never steps from a filler
to the first real value; a vital never seen in the window stays NaN (the model input then
treats it as absent, and its prediction is NaN: not scored).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Iterable, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from monitor.core.state import StateArrays, check_array
from monitor.core.types import BoolArray, Float32Array, FloatArray, PushOutcome

__all__ = [
    "SLACK",
    "PushResult",
    "WindowStore",
]

#: Samples a row holds beyond the window: the window moves back to the row's start once
#: every SLACK samples, and one `push_ready` call takes at most SLACK samples per patient.
SLACK = 16


class PushResult(NamedTuple):
    """What `WindowStore.push` did with one sample (a tuple: one is built per sample).

    Attributes:
        outcome: warming_up, ready, duplicate, late or refused_cap.
        context: For `ready`: a copy of the full window before this sample, chronological,
            shape (window, F), float32. None otherwise.
        gap_reset: The window restarted because of a time gap.
        missing: Sequence numbers skipped between the previous accepted sample and this one.
        evicted: Idle patients evicted to make room for this one (forget their state).
    """

    outcome: PushOutcome
    context: Float32Array | None = None
    gap_reset: bool = False
    missing: int = 0
    evicted: tuple[str, ...] = ()


_DUPLICATE = PushResult("duplicate")
_LATE = PushResult("late")
_REFUSED = PushResult("refused_cap")


class WindowStore:
    """Rolling windows of the last `window` samples per patient.

    Args:
        window: Samples per window (the model card's window length).
        n_features: Values per sample.
        max_patients: Most patients held at once.
        idle_ttl_s: A patient unseen for longer than this may be evicted.
        max_gap_s: A larger time gap between consecutive samples restarts the window.
        masked: Store each vital with an observed flag, carrying missing vitals forward
            (contexts are then ``(window, 2F)``: values, then flags).
        period_s: The model's sample period; a slower stream stretches the gap and
            staleness limits by its previous interval over this (0: never).
    """

    def __init__(
        self,
        window: int,
        n_features: int,
        *,
        max_patients: int,
        idle_ttl_s: float,
        max_gap_s: float,
        masked: bool = False,
        period_s: float = 0.0,
    ) -> None:
        if window < 1 or n_features < 1 or max_patients < 1:
            raise ValueError("window, n_features and max_patients must be positive")
        self.window = window
        self.n_features = n_features
        self.masked = masked
        self.max_patients = max_patients
        self.idle_ttl_s = idle_ttl_s
        self.max_gap_s = max_gap_s
        self.period_s = period_s
        row = window + SLACK
        self._row = row
        width = 2 * n_features if masked else n_features
        self.width = width
        n_features = width
        self._slab = np.zeros((max_patients, row, width), dtype=np.float32)
        # Every `window` consecutive samples of the slab, as one read-only view: entry
        # `slot * row + start` is that slot's window starting at `start`.
        flat = self._slab.reshape(-1, n_features)
        self._flat = flat
        item = flat.itemsize
        self._windows: Float32Array = np.lib.stride_tricks.as_strided(
            flat,
            shape=(flat.shape[0] - window + 1, window, n_features),
            strides=(n_features * item, n_features * item, item),
            writeable=False,
        )
        # Per-slot scalars in plain lists: indexing a list is cheaper than a numpy scalar.
        self._start = [0] * max_patients  # where the window starts in the slot's row
        self._count = [0] * max_patients
        self._last_t = [0.0] * max_patients
        self._last_seq = [0] * max_patients
        self._last_seen = [0.0] * max_patients
        self._last_dt = [0.0] * max_patients  # the previous interval (0: none yet)
        # Least recently pushed first: eviction and staleness scans stop at the first fresh one.
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._free = list(range(max_patients - 1, -1, -1))

    def __len__(self) -> int:
        return len(self._slots)

    def __contains__(self, patient_id: object) -> bool:
        return patient_id in self._slots

    def patients(self) -> list[str]:
        """Return the held patient ids, least recently seen first."""
        return list(self._slots)

    def last_seen(self, patient_id: str) -> float | None:
        """Return the receive time of the patient's last accepted sample, or None if unknown."""
        slot = self._slots.get(patient_id)
        return None if slot is None else self._last_seen[slot]

    def push(
        self, patient_id: str, t: float, seq: int, values: FloatArray, now: float
    ) -> PushResult:
        """Apply the order and gap policy to one sample and store it if accepted.

        Args:
            patient_id: An allowlisted patient id.
            t: Sample time, seconds.
            seq: Per-patient sequence number.
            values: Shape (F,), model feature order.
            now: Receive time, seconds (drives idle eviction and staleness).

        Returns:
            The outcome; for `ready`, the context window that predicts this sample.
        """
        slot = self._slots.get(patient_id)
        if slot is None:
            return self._admit(patient_id, t, seq, values, now)
        last_seq = self._last_seq[slot]
        if seq <= last_seq:
            return _DUPLICATE if seq == last_seq else _LATE
        last_t = self._last_t[slot]
        if t < last_t:
            return _LATE
        missing = seq - last_seq - 1
        self._slots.move_to_end(patient_id)
        self._last_seen[slot] = now
        self._last_seq[slot] = seq
        self._last_t[slot] = t
        dt = t - last_t
        limit = self.max_gap_s * self._stretch(self._last_dt[slot])
        self._last_dt[slot] = dt
        if dt > limit:
            self._count[slot] = 0
            self._start[slot] = 0
            self._write(slot, values)
            return PushResult("warming_up", None, True, missing)
        window = self.window
        # The steady state, inline (this runs once per sample): copy the full window, then
        # write this sample after it and move the window on by one.
        if self._count[slot] == window:
            start = self._start[slot]
            row = self._slab[slot]
            if start == SLACK:  # the row is used up: move the window back to its start
                row[:window] = row[start:]
                start = 0
            context: Float32Array = row[start : start + window].copy()
            if self.masked:
                self._put(row, start + window, start, values)
            else:
                row[start + window] = values
            self._start[slot] = start + 1
            return PushResult("ready", context, False, missing)
        self._write(slot, values)
        return PushResult("warming_up", None, False, missing)

    def push_ready(
        self,
        patient_ids: Sequence[str],
        t: Sequence[float],
        seq: Sequence[int],
        values: FloatArray,
        now: Sequence[float],
        skip: Container[str] = (),
    ) -> tuple[BoolArray, Float32Array, int]:
        """Store the samples of a run that are plainly `ready`; leave the others to `push`.

        Per patient, the samples before its first one that `push` would not simply turn
        into `ready` (unknown or skipped patient, window not yet full, duplicate, late,
        time gap) are plain, up to `SLACK` of them. Those are stored and their context
        windows copied with a few array operations instead of one `push` each. Patients are
        independent, so calling `push` afterwards on every other sample, in order, leaves
        each window and each patient's bookkeeping as `push` on every sample in order
        would; only the least-recently-seen order is left to the caller (`touch`).

        Args:
            patient_ids: Each sample's patient.
            t: Sample times, seconds.
            seq: Sequence numbers.
            values: Shape ``(n, F)``, model feature order.
            now: Receive times, seconds.
            skip: Patients whose samples are all left to `push`.

        Returns:
            ``(plain, contexts, missing)``: which samples were stored, their contexts in
            sample order ``(plain.sum(), window, F)`` (a new array), and the sequence
            numbers skipped before them (as `push` reports).
        """
        n, window = len(patient_ids), self.window
        get = self._slots.get
        slots = [get(p, -1) for p in patient_ids]
        if skip:
            slots = [-1 if p in skip else s for p, s in zip(patient_ids, slots, strict=True)]
        s = np.array(slots, dtype=np.int64).reshape(n)
        seq_a = np.array(seq, dtype=np.int64).reshape(n)
        t_a = np.array(t, dtype=np.float64).reshape(n)
        # Group the samples by patient (stable): each one's previous sample of the same
        # patient in the run, and how many of them come before it (k).
        order = np.argsort(s, kind="stable")
        grouped = s[order]
        first = np.ones(n, dtype=bool)
        first[1:] = grouped[1:] != grouped[:-1]
        position = np.arange(n)
        group_start = np.maximum.accumulate(np.where(first, position, 0))
        k_sorted = position - group_start
        previous_sorted = np.empty(n, dtype=np.int64)
        previous_sorted[0] = -1
        previous_sorted[1:] = order[:-1]
        previous_sorted[first] = -1
        last_seq, last_t, count = self._last_seq, self._last_t, self._count
        known = s >= 0
        stored_seq = np.array([last_seq[i] if i >= 0 else 0 for i in slots], dtype=np.int64)
        stored_t = np.array([last_t[i] if i >= 0 else 0.0 for i in slots], dtype=np.float64)
        last_dt = self._last_dt
        stored_dt = np.array([last_dt[i] if i >= 0 else 0.0 for i in slots], dtype=np.float64)
        full = np.array([i >= 0 and count[i] == window for i in slots], dtype=bool)
        previous = np.empty(n, dtype=np.int64)
        previous[order] = previous_sorted
        has_previous = previous >= 0
        prev_seq = np.where(has_previous, seq_a[previous], stored_seq)
        prev_t = np.where(has_previous, t_a[previous], stored_t)
        dt = t_a - prev_t
        prev_dt = np.where(has_previous, dt[previous], stored_dt)
        gap_limit = self.max_gap_s * (
            np.maximum(1.0, prev_dt / self.period_s) if self.period_s > 0 else 1.0
        )
        k = np.empty(n, dtype=np.int64)
        k[order] = k_sorted
        fit = known & full & (seq_a > prev_seq) & (t_a >= prev_t) & (dt <= gap_limit) & (k < SLACK)
        if self.masked:
            # A sample lacking a vital takes `push` (carry forward), and so does one after a
            # stored row lacking one (a vital's first value is written back over the
            # window there); a later sample of the run follows a plain, complete one.
            fit &= ~np.isnan(values).any(axis=1)
            first = fit & ~has_previous
            if first.any():
                rows_first = np.flatnonzero(first)
                last = np.array(
                    [self._start[slots[i]] + window - 1 for i in rows_first.tolist()], np.int64
                )
                stored = self._slab[s[rows_first], last, : self.n_features]
                fit[rows_first] = ~np.isnan(stored).any(axis=1)
        # Plain: every sample of the patient up to this one fits (a running AND per group).
        misfits_sorted = np.cumsum(~fit[order])
        before_group = (misfits_sorted - (~fit[order]))[group_start]
        plain = np.empty(n, dtype=bool)
        plain[order] = misfits_sorted == before_group
        rows = np.flatnonzero(plain)
        if rows.size == 0:
            return plain, np.empty((0, window, self.width), np.float32), 0
        missing = int((seq_a[rows] - prev_seq[rows] - 1).sum())
        # Each patient's last plain sample: how many it stores, and the state it leaves.
        ps = s[rows]
        _, last_in_reversed = np.unique(ps[::-1], return_index=True)
        last_rows = rows[rows.size - 1 - last_in_reversed].tolist()
        starts, slab = self._start, self._slab
        for i in last_rows:  # make room after each window for its new samples
            slot = slots[i]
            start = starts[slot]
            if start + int(k[i]) + 1 > SLACK:
                slab[slot, :window] = slab[slot, start : start + window]
                starts[slot] = 0
        base = ps * self._row + np.array([starts[slots[i]] for i in rows.tolist()]) + k[rows]
        if self.masked:
            f = self.n_features
            self._flat[base + window, :f] = values[rows]
            self._flat[base + window, f:] = 1.0
        else:
            self._flat[base + window] = values[rows]
        contexts: Float32Array = self._windows[base]
        last_seen = self._last_seen
        for i in last_rows:
            slot = slots[i]
            starts[slot] += int(k[i]) + 1
            last_seq[slot] = int(seq_a[i])
            last_t[slot] = float(t_a[i])
            last_dt[slot] = float(dt[i])
            last_seen[slot] = now[i]
        return plain, contexts, missing

    def touch(self, patient_ids: Iterable[str]) -> None:
        """Make these patients the most recently seen, in this order (after `push_ready`)."""
        move = self._slots.move_to_end
        for patient_id in patient_ids:
            move(patient_id)

    def evict_idle(self, now: float) -> list[str]:
        """Remove every patient not seen for longer than `idle_ttl_s`.

        Returns:
            The evicted patient ids, least recently seen first.
        """
        gone = self.stale(now, self.idle_ttl_s)
        for patient_id in gone:
            self.remove(patient_id)
        return gone

    def stale(self, now: float, limit_s: float) -> list[str]:
        """Return patients whose last accepted sample was received more than `limit_s` ago
        (stretched for a stream slower than `period_s`, as the gap limit is)."""
        out: list[str] = []
        last_seen, last_dt, stretch = self._last_seen, self._last_dt, self._stretch
        for patient_id, slot in self._slots.items():
            silent = now - last_seen[slot]
            if silent <= limit_s:
                break
            if silent > limit_s * stretch(last_dt[slot]):
                out.append(patient_id)
        return out

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every held patient's window and bookkeeping, independent of slot numbers.

        Returns:
            ``(patient_ids, arrays)``: ids least recently seen first, and arrays aligned
            with them: ``rows`` ``(n, window, width)`` float32 (each window oldest first,
            zeros after `count` while warming up), ``count``, ``last_seq`` (int64),
            ``last_t``, ``last_seen`` and ``last_dt`` (float64).
        """
        ids = list(self._slots)
        slots = [self._slots[p] for p in ids]
        starts = np.array([self._start[s] for s in slots], dtype=np.int64)
        count = np.array([self._count[s] for s in slots], dtype=np.int64)
        rows = self._windows[np.array(slots, dtype=np.int64) * self._row + starts]
        rows[np.arange(self.window)[None, :] >= count[:, None]] = 0.0
        arrays: dict[str, npt.NDArray[Any]] = {
            "rows": np.ascontiguousarray(rows, dtype=np.float32),
            "count": count,
            "last_seq": np.array([self._last_seq[s] for s in slots], dtype=np.int64),
            "last_t": np.array([self._last_t[s] for s in slots], dtype=np.float64),
            "last_seen": np.array([self._last_seen[s] for s in slots], dtype=np.float64),
            "last_dt": np.array([self._last_dt[s] for s in slots], dtype=np.float64),
        }
        return ids, arrays

    def import_state(
        self, patient_ids: Sequence[str], arrays: StateArrays, shift_s: float = 0.0
    ) -> None:
        """Hold the patients of an `export_state` (this store must be empty).

        Args:
            patient_ids: As `export_state` returned them (least recently seen first).
            arrays: Its arrays, aligned with `patient_ids`.
            shift_s: Added to each receive time (`last_seen`): the time the state spent on
                disk is not the patients' silence.

        Raises:
            ValueError: The store is not empty, the patients do not fit, or an array has
                the wrong shape; nothing is changed then.
        """
        n = len(patient_ids)
        if self._slots:
            raise ValueError("import_state needs an empty store")
        if n > self.max_patients:
            raise ValueError(f"{n} patients do not fit max_patients={self.max_patients}")
        if len(set(patient_ids)) != n:
            raise ValueError("duplicate patient ids")
        check_array(arrays, "rows", (n, self.window, self.width))
        for name in ("count", "last_seq", "last_t", "last_seen", "last_dt"):
            check_array(arrays, name, (n,))
        count = arrays["count"].astype(np.int64)
        if n and (count.min() < 1 or count.max() > self.window):
            raise ValueError(f"count must lie in 1..{self.window}")
        slots = [self._free.pop() for _ in range(n)]
        self._slab[slots, : self.window] = arrays["rows"]
        columns = zip(
            patient_ids,
            slots,
            count.tolist(),
            arrays["last_seq"].tolist(),
            arrays["last_t"].tolist(),
            (arrays["last_seen"] + shift_s).tolist(),
            arrays["last_dt"].tolist(),
            strict=True,
        )
        for pid, slot, c, seq, t, seen, dt in columns:
            self._slots[pid] = slot
            self._start[slot] = 0
            self._count[slot] = int(c)
            self._last_seq[slot] = int(seq)
            self._last_t[slot] = float(t)
            self._last_seen[slot] = float(seen)
            self._last_dt[slot] = float(dt)

    def _stretch(self, interval: float) -> float:
        """How much slower than the model's period a stream with this interval is (>= 1)."""
        if self.period_s <= 0 or interval <= self.period_s:
            return 1.0
        return interval / self.period_s

    def remove(self, patient_id: str) -> bool:
        """Forget a patient and free its slot; return whether it was held."""
        slot = self._slots.pop(patient_id, None)
        if slot is None:
            return False
        self._free.append(slot)
        return True

    def _admit(
        self, patient_id: str, t: float, seq: int, values: FloatArray, now: float
    ) -> PushResult:
        evicted: tuple[str, ...] = ()
        if not self._free:
            oldest = next(iter(self._slots))
            if now - self._last_seen[self._slots[oldest]] <= self.idle_ttl_s:
                return _REFUSED
            evicted = tuple(self.evict_idle(now))
        slot = self._free.pop()
        self._slots[patient_id] = slot
        self._count[slot] = 0
        self._start[slot] = 0
        self._last_t[slot] = t
        self._last_seq[slot] = seq
        self._last_seen[slot] = now
        self._last_dt[slot] = 0.0
        self._write(slot, values)
        return PushResult("warming_up", None, False, 0, evicted)

    def _write(self, slot: int, values: FloatArray) -> None:
        # A window still filling starts at the row's start (admission and gap resets put
        # it there), so the next sample goes right after the `count` it holds.
        count = self._count[slot]
        if self.masked:
            self._put(self._slab[slot], count, 0, values)
        else:
            self._slab[slot, count] = values
        self._count[slot] = count + 1

    def _put(self, row: Float32Array, at: int, start: int, values: FloatArray) -> None:
        """Write a sample at `at` of a masked row whose window starts at `start`: missing
        vitals carried forward from the row before, observed flags after the values, and
        a vital's first value in the window written back over the window's earlier rows."""
        f = self.n_features
        seen = ~np.isnan(values)
        if at == start:
            row[at, :f] = values
        else:
            prev = row[at - 1, :f]
            row[at, :f] = np.where(seen, values, prev)
            first = seen & np.isnan(prev)
            if first.any():
                row[start:at, :f][:, first] = values[first]
        row[at, f:] = seen
