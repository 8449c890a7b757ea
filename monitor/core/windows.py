"""Per-patient rolling windows in one preallocated slab, with the order, gap and cap policy.

Each patient owns one slot of a `(max_patients, window, F)` float32 slab used as a ring
buffer. `np.zeros` is lazily backed by the OS, so an idle capacity costs address space, not
resident memory; freed slots are reused. The policy (docs/detection.md):

* seq equal to the last accepted seq: `duplicate`; lower: `late`; both dropped, window untouched.
* higher seq but an earlier sample time: `late` (dropped).
* a time gap above `max_gap_s`: the window restarts with this sample (`gap_reset`).
* seq jumps by more than one: accepted; `missing` says how many numbers were skipped.
* a new patient when the store is full: the least recently seen patient is evicted if idle
  for longer than `idle_ttl_s`, else the sample is `refused_cap`.

`push` returns, when the window was already full, a copy of the window ending at the
previous sample: the model input that predicts this sample.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import NamedTuple

import numpy as np

from monitor.core.types import Float32Array, FloatArray, PushOutcome


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
    """

    def __init__(
        self,
        window: int,
        n_features: int,
        *,
        max_patients: int,
        idle_ttl_s: float,
        max_gap_s: float,
    ) -> None:
        if window < 1 or n_features < 1 or max_patients < 1:
            raise ValueError("window, n_features and max_patients must be positive")
        self.window = window
        self.n_features = n_features
        self.max_patients = max_patients
        self.idle_ttl_s = idle_ttl_s
        self.max_gap_s = max_gap_s
        self._slab = np.zeros((max_patients, window, n_features), dtype=np.float32)
        # Per-slot scalars in plain lists: indexing a list is ~3x cheaper than a numpy scalar.
        self._head = [0] * max_patients  # next write position
        self._count = [0] * max_patients
        self._last_t = [0.0] * max_patients
        self._last_seq = [0] * max_patients
        self._last_seen = [0.0] * max_patients
        # Least recently pushed first: eviction and staleness scans stop at the first fresh one.
        self._slots: OrderedDict[str, int] = OrderedDict()
        self._free = list(range(max_patients - 1, -1, -1))
        # Ring order from any head, as one slice: `take` with it copies a window in one call.
        self._order = np.arange(2 * window) % window

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
        if t - last_t > self.max_gap_s:
            self._count[slot] = 0
            self._head[slot] = 0
            self._write(slot, values)
            return PushResult("warming_up", None, True, missing)
        window, head = self.window, self._head[slot]
        ring = self._slab[slot]
        # The steady state, inline (this runs once per sample): copy the full window, then
        # overwrite its oldest row with this sample.
        if self._count[slot] == window:
            context: Float32Array = ring.take(self._order[head : head + window], axis=0)
            ring[head] = values
            self._head[slot] = (head + 1) % window
            return PushResult("ready", context, False, missing)
        self._write(slot, values)
        return PushResult("warming_up", None, False, missing)

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
        """Return patients whose last accepted sample was received more than `limit_s` ago."""
        out: list[str] = []
        for patient_id, slot in self._slots.items():
            if now - self._last_seen[slot] <= limit_s:
                break
            out.append(patient_id)
        return out

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
        self._head[slot] = 0
        self._last_t[slot] = t
        self._last_seq[slot] = seq
        self._last_seen[slot] = now
        self._write(slot, values)
        return PushResult("warming_up", None, False, 0, evicted)

    def _write(self, slot: int, values: FloatArray) -> None:
        head = self._head[slot]
        self._slab[slot, head] = values
        self._head[slot] = (head + 1) % self.window
        if self._count[slot] < self.window:
            self._count[slot] += 1
