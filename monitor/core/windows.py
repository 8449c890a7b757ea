"""Per-patient rolling windows in one preallocated slab, with the order, gap and cap policy.

Each patient owns one row of a `(max_patients, window + SLACK, F)` float32 slab, the row of its
slot in the patient table (`SlotMap`, shared with the scoring side: the store admits and
releases its patients there; their rows elsewhere follow by generation): its window
is `window` consecutive samples of that row, oldest first, and a new sample is written just
after them; once the row is used up, the window moves back to its start (one copy every
`SLACK` samples). A window is therefore always one contiguous slice, so it is copied out in
one call, and `push` copies the windows of a whole batch of samples in one gather.
`np.zeros` is lazily backed by the OS, so an idle capacity costs address space, not
resident memory; freed slots are reused. The policy (docs/detection.md):

* seq equal to the last accepted seq: `duplicate`; lower with a sample time no later than
  the last: `late`; both dropped, window untouched.
* lower seq with a later sample time: the device restarted its counter (`order` "restart");
  accepted, the window goes on. Right after a suspect jump (below), a seq above the one
  before the jump is the old counter going on (`order` "resumed").
* a seq jump of more than `max_seq_jump`: accepted but suspect (`order` "seq_jump"): its
  skipped numbers are not counted, and the seq before it is kept, so that the next sample
  of the real counter is not `late`. One message moves the order state for one sample.
* higher seq but an earlier sample time: the device clock stepped back (`order`
  "clock_back"); accepted, the window restarts.
* a sample time ahead of the receive time by more than the patient's learned clock offset
  plus `max_future_skew_s`: a clock jump, refused (`clock_skew`) until `RELEARN_SAMPLES`
  samples in a row agree on the new offset; then it is learned (`order` "clock_jump", the
  window restarts). The offset is learned from the patient's samples (the largest lead of
  sample time over receive time, at most `max_offset_s`): a constant offset is monitored
  and reported once (`clock` "offset"), docs/time.md.
* a time gap above `max_gap_s`: the window restarts with this sample (`gap_reset`). With
  `period_s` (the model's sample period) the limit stretches with a stream slower than
  the model: it is `max_gap_s` times the patient's previous interval over `period_s` when
  that is above 1, so once-a-minute numerics served by a 1 Hz model are not reset at every
  sample (the same stretch applies to `stale`). With `period_s`, a stream's first interval
  (its window holds one sample) is its rate, never a gap.
* seq jumps by more than one: accepted; `missing` says how many numbers were skipped.
* a new patient when the store is full: the least recently seen patient is evicted if idle
  for longer than `idle_ttl_s`; else the least recently seen patient still on probation
  (its window never filled once: a one-message id cannot lock out a real patient); else
  the sample is `refused_cap`.

`push` takes a batch of samples (one sample is a batch of one) and returns, for each that
found its window already full, a copy of the window ending at the previous sample: the
model input that predicts this sample.

With `masked` (a model that takes an observed mask, docs/detection.md "Partial vital
sets") a sample may lack vitals (NaN). Each stored row then holds ``2F`` values: the
vitals, a missing one carried forward from the patient's previous sample, and an observed
flag (1.0 or 0.0) per vital. A vital seen for the first time in a window is written back
over the window's earlier rows (its flags stay 0), so a window never steps from a filler
to the first real value; a vital never seen in the window stays NaN (the model input then
treats it as absent, and its prediction is NaN: not scored).
A batch's plain samples are carried forward with array operations (a forward fill per
patient, from its window's last row); only a sample bringing a vital's first value in its
window takes the sample-by-sample policy.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Container, Iterable, Sequence
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from monitor.core.slots import Grouped, SlotMap, last_observed
from monitor.core.state import StateArrays, check_array
from monitor.core.types import BoolArray, Float32Array, FloatArray, PushOutcome

__all__ = [
    "SLACK",
    "PushResult",
    "Pushed",
    "WindowStore",
    "gap_ratio",
]

#: Samples a row holds beyond the window: the window moves back to the row's start once
#: every SLACK samples, and one `push` stores at most SLACK plain samples per patient.
SLACK = 16

#: Consecutive samples that must agree on a new clock offset before a clock jump is learned.
RELEARN_SAMPLES = 10

#: Samples after which a patient's clock offset is settled enough to report one behind the
#: wall clock (delivery delay also makes samples look behind; never ahead); at most the
#: window (these samples take `push`: a window fills there).
OFFSET_SETTLE = 8

#: A discontinuity of a patient's order state that `push` accepted (docs/time.md).
OrderChange = Literal["", "restart", "resumed", "seq_jump", "clock_back", "clock_jump"]

#: A change of a patient's clock offset report: "offset" (now off by more than
#: `clock_alert_s`), "offset_ok" (no longer), or "".
ClockChange = Literal["", "offset", "offset_ok"]


class PushResult(NamedTuple):
    """What `WindowStore.push` did with one sample (a tuple: one is built per sample).

    Attributes:
        outcome: warming_up, ready, duplicate, late, refused_cap or clock_skew.
        context: For `ready`: a copy of the full window before this sample, chronological,
            shape (window, F), float32. None otherwise.
        gap_reset: The window restarted because of a time gap.
        missing: Sequence numbers skipped between the previous accepted sample and this one.
        evicted: Patients evicted to make room for this one (forget their state).
        order: A discontinuity of the order state that this sample was accepted with.
        clock: A change of the patient's clock offset report.
        gap: For `ready`: the interval before this sample over the stream's own (its
            previous interval, at least the model's period); 1 for a steady stream, 5
            after four samples went missing (`gap_ratio`).
    """

    outcome: PushOutcome
    context: Float32Array | None = None
    gap_reset: bool = False
    missing: int = 0
    evicted: tuple[str, ...] = ()
    order: OrderChange = ""
    clock: ClockChange = ""
    gap: float = 1.0


_DUPLICATE = PushResult("duplicate")
_LATE = PushResult("late")
_REFUSED = PushResult("refused_cap")
_CLOCK_SKEW = PushResult("clock_skew")

#: Outcomes of a sample the window took.
_TAKEN = ("warming_up", "ready")

#: A batch shorter than this takes the sample-by-sample policy: the array operations'
#: fixed cost is more than its samples' (`bench/ingest_batch.py`, docs/benchmarks.md).
_VECTOR_MIN = 32

#: Sequence numbers skipped before each plain sample (int64).
IntArray = npt.NDArray[np.int64]

_NO_MISSING: IntArray = np.zeros(0, dtype=np.int64)
_NO_GAPS: FloatArray = np.zeros(0, dtype=np.float64)


def gap_ratio(interval: float, previous: float, period_s: float) -> float:
    """The interval before a sample over the stream's own interval: its previous one, at
    least the model's sample period (1 without a previous interval: a stream's first is
    its rate). A steady stream gives about 1; a sample after n missing ones about n + 1
    (docs/detection.md, "After a gap")."""
    return interval / max(previous, period_s) if previous > 0 else 1.0


class Pushed(NamedTuple):
    """What `WindowStore.push` did with a batch of samples.

    Attributes:
        plain: ``(n,)`` bool: the samples stored as plainly `ready`.
        contexts: Their context windows, in sample order, ``(plain.sum(), window, width)``.
        missing: Sequence numbers skipped before each plain sample.
        rest: Position -> `PushResult` of every other sample.
        gaps: Each plain sample's `PushResult.gap`.
    """

    plain: BoolArray
    contexts: Float32Array
    missing: IntArray
    rest: dict[int, PushResult]
    gaps: FloatArray

    def result(self, i: int) -> PushResult:
        """The `PushResult` of sample `i`, plain or not."""
        if i in self.rest:
            return self.rest[i]
        j = int(self.plain[:i].sum())
        return PushResult(
            "ready", self.contexts[j], False, int(self.missing[j]), gap=float(self.gaps[j])
        )


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
        max_seq_jump: A larger forward jump of seq is suspect (not authoritative).
        max_future_skew_s: A sample time further ahead of its receive time than the
            patient's learned offset plus this is a clock jump (inf: never).
        max_offset_s: The largest clock offset learned.
        clock_alert_s: A learned offset larger than this (either way) is reported.
        patients: The patient table to admit patients into (its limit must be
            `max_patients`); the store makes its own when None.
    """

    # Declared attributes: every `self.x` in `push` is then a slot load. Without them,
    # CPython (3.11, measured) keeps an instance's attributes in the class's shared-keys
    # table only up to 30 names; past that (36 here) each instance gets a plain dict and
    # every attribute load is a dict lookup (about 60 more instructions per load:
    # docs/benchmarks.md). A new attribute must be named here.
    __slots__ = (
        "_anchor",
        "_count",
        "_fast_lead",
        "_flat",
        "_index",
        "_jump_lead",
        "_jump_n",
        "_last_dt",
        "_last_seen",
        "_last_seq",
        "_last_t",
        "_lead",
        "_lead_n",
        "_lru",
        "_no_contexts",
        "_off",
        "_probation",
        "_quiet",
        "_rate_dt",
        "_row",
        "_settle",
        "_slab",
        "_start",
        "_step_bound",
        "_windows",
        "clock_alert_s",
        "idle_ttl_s",
        "masked",
        "max_future_skew_s",
        "max_gap_s",
        "max_offset_s",
        "max_patients",
        "max_seq_jump",
        "n_features",
        "period_s",
        "table",
        "width",
        "window",
    )

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
        max_seq_jump: int = 100_000,
        max_future_skew_s: float = math.inf,
        max_offset_s: float = 0.0,
        clock_alert_s: float = math.inf,
        patients: SlotMap | None = None,
    ) -> None:
        if window < 1 or n_features < 1 or max_patients < 1:
            raise ValueError("window, n_features and max_patients must be positive")
        if patients is None:
            patients = SlotMap(limit=max_patients)
        elif patients.limit != max_patients or len(patients):
            raise ValueError("the patient table must be empty, with limit max_patients")
        self.table = patients
        self._index = patients.index  # patient -> slot: the row of every per-slot array
        self.window = window
        self.n_features = n_features
        self.masked = masked
        self.max_patients = max_patients
        self.idle_ttl_s = idle_ttl_s
        self.max_gap_s = max_gap_s
        self.period_s = period_s
        self.max_seq_jump = max_seq_jump
        self.max_future_skew_s = max_future_skew_s
        self.max_offset_s = max_offset_s
        self.clock_alert_s = clock_alert_s
        self._settle = min(OFFSET_SETTLE, window)
        self._step_bound = max_seq_jump + 1
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
        # The shorter of the last two intervals (the one when only one is known; 0: none
        # yet): the stream's rate for the signal-lost limit. An outage is not a rate: a
        # device back for one sample after 10 minutes that drops again is lost after its
        # own limit, not after 8 x 10 minutes.
        self._rate_dt = [0.0] * max_patients
        # The seq before a suspect jump, for the next sample only (None: no jump pending).
        self._anchor: list[int | None] = [None] * max_patients
        # Learned clock offset: the largest lead of sample time over receive time.
        self._lead = [0.0] * max_patients
        self._lead_n = [0] * max_patients  # samples pushed since admission (to OFFSET_SETTLE)
        self._off = [False] * max_patients  # the offset is reported
        self._jump_lead = [0.0] * max_patients  # lead of the last refused clock jump
        self._jump_n = [0] * max_patients  # refused clock jumps in a row agreeing on it
        # No suspect jump pending, no clock jump counted, the offset settled: `push` may
        # take its one-test path for an in-order sample.
        self._quiet = [False] * max_patients
        # The largest lead a sample may have and leave the clock state as it is (-inf
        # until the offset settled): `_push_plain`'s clock test, in one lookup.
        self._fast_lead = [-math.inf] * max_patients
        self._no_contexts: Float32Array = np.zeros((0, window, width), np.float32)
        # Patients whose window never filled, least recently pushed first: evicted first.
        self._probation: OrderedDict[str, None] = OrderedDict()
        # Held patients, least recently pushed first: eviction and staleness scans stop at
        # the first fresh one. An order, not an index: slots come from `patients`.
        self._lru: OrderedDict[str, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._lru)

    def __contains__(self, patient_id: object) -> bool:
        return patient_id in self._lru

    def patients(self) -> list[str]:
        """Return the held patient ids, least recently seen first."""
        return list(self._lru)

    def last_seen(self, patient_id: str) -> float | None:
        """Return the receive time of the patient's last accepted sample, or None if unknown."""
        slot = self._index.get(patient_id)
        return None if slot is None else self._last_seen[slot]

    def push(
        self,
        patient_ids: Sequence[str],
        t: Sequence[float],
        seq: Sequence[int],
        values: FloatArray,
        now: Sequence[float],
        skip: Container[str] = (),
    ) -> Pushed:
        """Apply the order and gap policy to a batch of samples, in order, and store those
        accepted (a single sample is a batch of one).

        Per patient, the samples before its first one that is not simply `ready` (unknown
        or skipped patient, window not yet full, duplicate, late, time gap, order or clock
        change), up to `SLACK` of them, are plain: they are stored and their context
        windows copied with a few array operations. Every other sample then takes the
        sample-by-sample policy, in order; patients are independent, so each window and
        each patient's bookkeeping end as if every sample had been pushed in order, and so
        does the least-recently-seen order. A short batch, and one that could make the
        store evict (more samples of unknown patients than free slots: eviction depends on
        every other patient's state at that moment), takes the sample-by-sample policy
        throughout.

        Args:
            patient_ids: Each sample's patient (allowlisted ids).
            t: Sample times, seconds.
            seq: Per-patient sequence numbers.
            values: Shape ``(n, F)``, model feature order.
            now: Receive times, seconds (drive idle eviction and staleness).
            skip: Patients whose samples all take the sample-by-sample policy.

        Returns:
            What happened to each sample (`Pushed`).
        """
        n = len(patient_ids)
        slots: list[int] = []
        if n >= _VECTOR_MIN:
            get = self._index.get
            slots = [get(p, -1) for p in patient_ids]
            if slots.count(-1) > self.table.room:  # an admission could evict
                slots = []
        if not slots:
            one = self._push_one
            every = {i: one(patient_ids[i], t[i], seq[i], values[i], now[i]) for i in range(n)}
            return Pushed(np.zeros(n, dtype=bool), self._no_contexts, _NO_MISSING, every, _NO_GAPS)
        plain, contexts, missing, gaps = self._push_plain(
            slots, patient_ids, t, seq, values, now, skip
        )
        if plain.all():  # the common batch: every sample ready, in order
            # Least recently seen order: by each patient's last sample, as one by one.
            self._touch(reversed(dict.fromkeys(reversed(patient_ids))))
            return Pushed(plain, contexts, missing, {}, gaps)
        push_one = self._push_one
        rest: dict[int, PushResult] = {}
        accepted = plain.tolist()
        for i in np.flatnonzero(~plain).tolist():
            result = rest[i] = push_one(patient_ids[i], t[i], seq[i], values[i], now[i])
            accepted[i] = result.outcome in _TAKEN
        last: dict[str, None] = {}
        for pid, ok in zip(patient_ids, accepted, strict=True):
            if ok:
                last.pop(pid, None)
                last[pid] = None
        self._touch(last)
        return Pushed(plain, contexts, missing, rest, gaps)

    def _push_one(
        self, patient_id: str, t: float, seq: int, values: FloatArray, now: float
    ) -> PushResult:
        """`push`'s policy for one sample: store it if accepted.

        Returns:
            The outcome; for `ready`, the context window that predicts this sample.
        """
        slot = self._index.get(patient_id)
        if slot is None:
            return self._admit(patient_id, t, seq, values, now)
        lead = t - now
        last_seq = self._last_seq[slot]
        last_t = self._last_t[slot]
        order: OrderChange = ""
        clock: ClockChange = ""
        # The common sample, in one test: in order, a plausible seq step, the clock
        # offset neither moved nor pending, no suspect jump pending.
        if (
            last_seq < seq <= last_seq + self._step_bound
            and t >= last_t
            and lead <= self._lead[slot]
            and self._quiet[slot]
        ):
            missing = seq - last_seq - 1
            restart = False
        else:
            irregular = self._irregular(slot, t, seq, lead, last_seq, last_t)
            if isinstance(irregular, PushResult):
                return irregular
            order, missing, clock = irregular
            # Tested here, not for every sample (docs/benchmarks.md).
            restart = order in ("clock_back", "clock_jump")
        self._lru.move_to_end(patient_id)
        self._last_seen[slot] = now
        self._last_seq[slot] = seq
        self._last_t[slot] = t
        dt = t - last_t
        previous = self._last_dt[slot]
        if previous == 0.0 and self._count[slot] == 1 and self.period_s > 0:
            # A stream's first interval: its rate, not a gap (nothing to judge it by yet; a
            # silence longer than `idle_ttl_s` has evicted the patient meanwhile).
            limit = math.inf
        else:
            limit = self.max_gap_s * self._stretch(previous)
        self._last_dt[slot] = dt
        self._rate_dt[slot] = dt if previous == 0.0 else min(dt, previous)
        if dt > limit or restart:
            self._count[slot] = 0
            self._start[slot] = 0
            self._write(patient_id, slot, values)
            return PushResult("warming_up", None, True, missing, (), order, clock)
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
            gap = gap_ratio(dt, previous, self.period_s)
            return PushResult("ready", context, False, missing, (), order, clock, gap)
        self._write(patient_id, slot, values)
        return PushResult("warming_up", None, False, missing, (), order, clock)

    def _irregular(
        self, slot: int, t: float, seq: int, lead: float, last_seq: int, last_t: float
    ) -> PushResult | tuple[OrderChange, int, ClockChange]:
        """The order and clock policy for any sample but the common one: the refusal, or
        the change it is accepted with, its skipped numbers and its clock report."""
        order: OrderChange = ""
        if lead > max(self._lead[slot], 0.0) + self.max_future_skew_s:
            if not self._jump_confirmed(slot, lead):
                return _CLOCK_SKEW
            order = "clock_jump"
        if seq == last_seq:
            return _DUPLICATE
        anchor = self._anchor[slot]
        if seq < last_seq:
            if t <= last_t:
                return _LATE
            # Time goes on and the counter went back: the device restarted (or, right
            # after a suspect jump, its real counter goes on).
            resumed = anchor is not None and seq > anchor
            missing = seq - anchor - 1 if resumed and anchor is not None else 0
            order = order or ("resumed" if resumed else "restart")
            anchor = None
        else:
            missing = seq - last_seq - 1
            anchor = None
            if missing > self.max_seq_jump:
                order, missing, anchor = "seq_jump", 0, last_seq
            if t < last_t:
                order = order or "clock_back"
        if missing > self.max_seq_jump:
            missing = 0
        self._anchor[slot] = anchor
        self._jump_n[slot] = 0
        clock = self._learn(slot, lead)
        self._quiet[slot] = anchor is None and self._lead_n[slot] >= self._settle
        return order, missing, clock

    def _jump_confirmed(self, slot: int, lead: float) -> bool:
        """Count a sample whose clock jumped ahead; True once `RELEARN_SAMPLES` in a row
        agree on the new offset (then it is learned: a jump is refused, a new clock is not)."""
        agree = self._jump_n[slot] and abs(lead - self._jump_lead[slot]) <= self.max_future_skew_s
        n = self._jump_n[slot] + 1 if agree else 1
        self._jump_lead[slot] = lead
        if n < RELEARN_SAMPLES:
            self._jump_n[slot] = n
            self._quiet[slot] = False  # the next sample, whatever it is, sees the count
            return False
        self._lead[slot] = min(lead, self.max_offset_s)
        return True

    def _learn(self, slot: int, lead: float) -> ClockChange:
        """Learn the clock offset from an accepted sample's lead; report a change of its
        report (off by more than `clock_alert_s` ahead, or behind once settled)."""
        if lead > self._lead[slot]:
            self._lead[slot] = min(lead, self.max_offset_s)
        n, settle = self._lead_n[slot], self._settle
        if n < settle:
            self._lead_n[slot] = n = n + 1
        offset = self._lead[slot]
        if n >= settle:
            # At the largest offset learned, a lead up to the jump limit changes nothing.
            at_most = offset >= self.max_offset_s
            self._fast_lead[slot] = max(offset, 0.0) + self.max_future_skew_s if at_most else offset
        off = offset > self.clock_alert_s or (n >= settle and -offset > self.clock_alert_s)
        if off == self._off[slot]:
            return ""
        self._off[slot] = off
        return "offset" if off else "offset_ok"

    def intervals(self, slots: Sequence[int]) -> FloatArray:
        """The last interval between accepted samples of the patients in these slots of the
        table (0.0: none yet), seconds."""
        last_dt = self._last_dt
        return np.array([last_dt[s] for s in slots], dtype=np.float64)

    def clock_offset(self, patient_id: str) -> float | None:
        """The patient's learned clock offset (sample time minus receive time), or None."""
        slot = self._index.get(patient_id)
        return None if slot is None else self._lead[slot]

    def _push_plain(
        self,
        slots: list[int],
        patient_ids: Sequence[str],
        t: Sequence[float],
        seq: Sequence[int],
        values: FloatArray,
        now: Sequence[float],
        skip: Container[str],
    ) -> tuple[BoolArray, Float32Array, IntArray, FloatArray]:
        """Store the plain samples of a batch (see `push`) with a few array operations.

        Returns:
            ``(plain, contexts, missing, gaps)``: which samples were stored, their contexts
            in sample order ``(plain.sum(), window, F)`` (a new array), the sequence
            numbers skipped before each of them, and each one's `gap_ratio`.
        """
        n, window = len(patient_ids), self.window
        if skip:
            slots = [-1 if p in skip else s for p, s in zip(patient_ids, slots, strict=True)]
        s = np.array(slots, dtype=np.int64).reshape(n)
        seq_a = np.array(seq, dtype=np.int64).reshape(n)
        t_a = np.array(t, dtype=np.float64).reshape(n)
        # Group the samples by patient (stable): each one's previous sample of the same
        # patient in the run, and how many of them come before it (k).
        order, _, starts_col, _ = Grouped.of(s)
        group_start = starts_col[:, 0]
        position = np.arange(n)
        first = group_start == position
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
        # A suspect seq jump, and a sample that would move the learned clock offset (or
        # is a clock jump), take `_push_one`: those change the order or clock state.
        fit &= seq_a - prev_seq <= self.max_seq_jump
        lead_a = t_a - np.array(now, dtype=np.float64).reshape(n)
        cap = self._fast_lead
        fit &= lead_a <= np.array([cap[i] if i >= 0 else -np.inf for i in slots], np.float64)
        carried = values
        if self.masked:
            # Missing vitals carried forward as `_put` does; a sample bringing a vital the
            # row before it lacks takes `_push_one` (its first value is written back over
            # the window there).
            carried, appears = self._carried(
                values, slots, s, order, first, fit, known & full, has_previous
            )
            fit &= ~appears
        # Plain: every sample of the patient up to this one fits (a running AND per group).
        misfits_sorted = np.cumsum(~fit[order])
        before_group = (misfits_sorted - (~fit[order]))[group_start]
        plain = np.empty(n, dtype=bool)
        plain[order] = misfits_sorted == before_group
        rows = np.flatnonzero(plain)
        if rows.size == 0:
            return plain, self._no_contexts, _NO_MISSING, _NO_GAPS
        missing = seq_a[rows] - prev_seq[rows] - 1
        before = prev_dt[rows]
        gaps = np.divide(
            dt[rows], np.maximum(before, self.period_s), out=np.ones(rows.size), where=before > 0
        )
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
            self._flat[base + window, :f] = carried[rows]
            # Observed flags: all 1 for a batch of complete samples (`_carried` returned it).
            self._flat[base + window, f:] = 1.0 if carried is values else ~np.isnan(values[rows])
        else:
            self._flat[base + window] = values[rows]
        contexts: Float32Array = self._windows[base]
        last_seen, rate_dt = self._last_seen, self._rate_dt
        for i in last_rows:
            slot = slots[i]
            starts[slot] += int(k[i]) + 1
            last_seq[slot] = int(seq_a[i])
            last_t[slot] = float(t_a[i])
            last_dt[slot] = interval = float(dt[i])
            earlier = float(prev_dt[i])
            rate_dt[slot] = interval if earlier == 0.0 else min(interval, earlier)
            last_seen[slot] = now[i]
            self._anchor[slot] = None
            self._jump_n[slot] = 0
            self._quiet[slot] = True  # settled (a plain sample's condition), nothing pending
        return plain, contexts, missing, gaps

    def _carried(
        self,
        values: FloatArray,
        slots: list[int],
        s: IntArray,
        order: IntArray,
        heads_sorted: BoolArray,
        fit: BoolArray,
        held: BoolArray,
        has_previous: BoolArray,
    ) -> tuple[FloatArray, BoolArray]:
        """What a masked store keeps of each sample of a batch, as `_put` one by one would:
        a missing vital carried forward from the patient's previous sample (earlier in the
        batch, or its window's last row); and which samples bring a vital that the row
        before them lacks (its first value in the window).

        Args:
            values: The batch's samples ``(n, F)``, NaN where a vital is missing.
            slots: Each sample's slot (-1: not held or skipped).
            s: `slots` as an array.
            order: The samples grouped by slot, stably (`_push_plain`'s order).
            heads_sorted: In that order, whether a sample is its group's first.
            fit: Per sample: fit for the array path so far.
            held: Per sample: its patient is held with a full window.
            has_previous: Per sample: an earlier sample of its patient is in the batch.

        Returns:
            ``(carried, appears)``; `carried` is `values` itself when no sample lacks a
            vital.
        """
        f = self.n_features
        missing = np.isnan(values)
        complete = not missing.any()
        # Each patient's first sample carries on from its window's last row.
        heads = np.flatnonzero((fit if complete else held) & ~has_previous)
        appears = np.zeros(values.shape[0], dtype=bool)
        if complete:  # the common batch: only a window lacking a vital can refuse a sample
            if heads.size:
                appears[heads] = np.isnan(self._last_rows(heads, slots, s)).any(axis=1)
            return values, appears
        n = values.shape[0]
        seeds = np.full((n, f), np.nan)
        if heads.size:
            seeds[heads] = self._last_rows(heads, slots, s)
        seeds = seeds[order]
        grouped = values[order]
        heads_col = heads_sorted[:, None]
        grouped = np.where(np.isnan(grouped) & heads_col, seeds, grouped)
        # Forward fill within each group: the index of the last row with a value, never
        # reaching back past the group's first row.
        at = last_observed(~np.isnan(grouped) | heads_col)
        carried_sorted = np.take_along_axis(grouped, at, axis=0)
        before = np.empty_like(carried_sorted)
        before[1:] = carried_sorted[:-1]
        before[heads_sorted] = seeds[heads_sorted]
        appears[order] = (~missing[order] & np.isnan(before)).any(axis=1)
        carried = np.empty_like(carried_sorted)
        carried[order] = carried_sorted
        return carried, appears

    def _last_rows(self, rows: IntArray, slots: list[int], s: IntArray) -> Float32Array:
        """The vitals of the last stored sample of each of these samples' windows."""
        at = [self._start[slots[i]] + self.window - 1 for i in rows.tolist()]
        last: Float32Array = self._slab[s[rows], at, : self.n_features]
        return last

    def _touch(self, patient_ids: Iterable[str]) -> None:
        """Make these patients the most recently seen, in this order."""
        move = self._lru.move_to_end
        for patient_id in patient_ids:
            move(patient_id)

    def shift_seen(self, before: float, step: float) -> None:
        """Move on by `step` the receive time of every patient last seen at `before` or
        earlier: the receiver was away (a host suspended, its clock stepped forward), and
        time it did not watch is not the patients' silence."""
        last_seen, index = self._last_seen, self._index
        for patient_id in self._lru:
            slot = index[patient_id]
            if last_seen[slot] <= before:
                last_seen[slot] += step

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
        (stretched for a stream slower than `period_s` by its rate: the shorter of its last
        two intervals, so one outage does not stretch the next silence's limit)."""
        out: list[str] = []
        last_seen, rate_dt, stretch = self._last_seen, self._rate_dt, self._stretch
        index = self._index
        for patient_id in self._lru:
            slot = index[patient_id]
            silent = now - last_seen[slot]
            if silent <= limit_s:
                break
            if silent > limit_s * stretch(rate_dt[slot]):
                out.append(patient_id)
        return out

    def export_state(self) -> tuple[list[str], dict[str, npt.NDArray[Any]]]:
        """Return every held patient's window and bookkeeping, independent of slot numbers.

        Returns:
            ``(patient_ids, arrays)``: ids least recently seen first, and arrays aligned
            with them: ``rows`` ``(n, window, width)`` float32 (each window oldest first,
            zeros after `count` while warming up), ``count``, ``last_seq`` (int64),
            ``last_t``, ``last_seen``, ``last_dt`` and ``rate_dt`` (float64), and the learned clock
            (docs/time.md): ``lead`` (float64), ``lead_n`` and ``off`` (int64). A pending
            suspect jump or clock jump is not kept: the next sample starts them again.
        """
        ids = list(self._lru)
        slots = [self._index[p] for p in ids]
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
            "rate_dt": np.array([self._rate_dt[s] for s in slots], dtype=np.float64),
            "lead": np.array([self._lead[s] for s in slots], dtype=np.float64),
            "lead_n": np.array([self._lead_n[s] for s in slots], dtype=np.int64),
            "off": np.array([self._off[s] for s in slots], dtype=np.int64),
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
        if self._lru:
            raise ValueError("import_state needs an empty store")
        if n > self.table.room:
            raise ValueError(f"{n} patients do not fit max_patients={self.max_patients}")
        if len(set(patient_ids)) != n:
            raise ValueError("duplicate patient ids")
        check_array(arrays, "rows", (n, self.window, self.width))
        for name in (
            "count",
            "last_seq",
            "last_t",
            "last_seen",
            "last_dt",
            "lead",
            "lead_n",
            "off",
        ):
            check_array(arrays, name, (n,))
        # A file written before `rate_dt` existed: the last interval is the rate.
        rates = check_array(arrays, "rate_dt", (n,)) if "rate_dt" in arrays else arrays["last_dt"]
        count = arrays["count"].astype(np.int64)
        if n and (count.min() < 1 or count.max() > self.window):
            raise ValueError(f"count must lie in 1..{self.window}")
        if any(p in self._index for p in patient_ids):
            raise ValueError("a patient holds a slot in the patient table already")
        slots = [self.table.admit(p) for p in patient_ids]
        self._slab[slots, : self.window] = arrays["rows"]
        columns = zip(
            patient_ids,
            slots,
            count.tolist(),
            arrays["last_seq"].tolist(),
            arrays["last_t"].tolist(),
            (arrays["last_seen"] + shift_s).tolist(),
            arrays["last_dt"].tolist(),
            rates.tolist(),
            arrays["lead"].tolist(),
            arrays["lead_n"].tolist(),
            arrays["off"].tolist(),
            strict=True,
        )
        for pid, slot, c, seq, t, seen, dt, rate, lead, lead_n, off in columns:
            self._lru[pid] = None
            self._start[slot] = 0
            self._count[slot] = int(c)
            self._last_seq[slot] = int(seq)
            self._last_t[slot] = float(t)
            self._last_seen[slot] = float(seen)
            self._last_dt[slot] = float(dt)
            self._rate_dt[slot] = float(rate)
            self._restore_clock(slot, float(lead), int(lead_n), bool(off))
            if c < self.window:
                self._probation[pid] = None

    def _restore_clock(self, slot: int, lead: float, lead_n: int, off: bool) -> None:
        """A restored patient's learned clock, as `_learn` leaves it, nothing pending."""
        self._anchor[slot] = None
        self._jump_n[slot] = 0
        self._jump_lead[slot] = 0.0
        self._lead[slot] = max(-self.max_offset_s, min(lead, self.max_offset_s))
        self._lead_n[slot] = min(max(lead_n, 0), self._settle)
        self._off[slot] = off
        settled = self._lead_n[slot] >= self._settle
        offset = self._lead[slot]
        fast = max(offset, 0.0) + self.max_future_skew_s if offset >= self.max_offset_s else offset
        self._fast_lead[slot] = fast if settled else -math.inf
        self._quiet[slot] = settled

    def _stretch(self, interval: float) -> float:
        """How much slower than the model's period a stream with this interval is (>= 1)."""
        if self.period_s <= 0 or interval <= self.period_s:
            return 1.0
        return interval / self.period_s

    def remove(self, patient_id: str) -> bool:
        """Forget a patient and free its slot; return whether it was held."""
        if patient_id not in self._lru:
            return False
        del self._lru[patient_id]
        self._probation.pop(patient_id, None)
        self.table.release(patient_id)
        return True

    def on_probation(self, patient_id: str) -> bool:
        """Whether the patient is held but its window never filled (evicted first)."""
        return patient_id in self._probation

    def _admit(
        self, patient_id: str, t: float, seq: int, values: FloatArray, now: float
    ) -> PushResult:
        evicted: tuple[str, ...] = ()
        if self.table.room <= 0:
            oldest = next(iter(self._lru))
            if now - self._last_seen[self._index[oldest]] > self.idle_ttl_s:
                evicted = tuple(self.evict_idle(now))
            elif self._probation:
                # Full of live patients: make room at the expense of one that never warmed
                # up (a one-message id), never of a patient being monitored.
                victim = next(iter(self._probation))
                self.remove(victim)
                evicted = (victim,)
            else:
                return _REFUSED
        slot = self.table.admit(patient_id)
        self._lru[patient_id] = None
        self._probation[patient_id] = None
        self._count[slot] = 0
        self._start[slot] = 0
        self._last_t[slot] = t
        self._last_seq[slot] = seq
        self._last_seen[slot] = now
        self._last_dt[slot] = 0.0
        self._rate_dt[slot] = 0.0
        self._anchor[slot] = None
        limit = self.max_offset_s
        self._lead[slot] = max(-limit, min(t - now, limit))
        self._lead_n[slot] = 0
        self._fast_lead[slot] = -math.inf
        self._off[slot] = False
        self._jump_n[slot] = 0
        clock = self._learn(slot, t - now)
        self._quiet[slot] = False
        self._write(patient_id, slot, values)
        return PushResult("warming_up", None, False, 0, evicted, "", clock)

    def _write(self, patient_id: str, slot: int, values: FloatArray) -> None:
        # A window still filling starts at the row's start (admission and gap resets put
        # it there), so the next sample goes right after the `count` it holds.
        count = self._count[slot]
        if self.masked:
            self._put(self._slab[slot], count, 0, values)
        else:
            self._slab[slot, count] = values
        self._count[slot] = count + 1
        probation = self._probation
        if patient_id in probation:
            if count + 1 == self.window:  # warmed up once: no longer evicted first
                del probation[patient_id]
            else:
                probation.move_to_end(patient_id)

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
