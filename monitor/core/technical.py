"""The technical alarm state machine: which technical alerts are open, and for whom.

One open alert per (patient, reason, vital): opening an open one or closing a closed one
changes nothing and returns no event, so callers may ask as often as a sample arrives.
Beside it, the patients the daemon receives but does not monitor (refused at the patient
cap, or every message refused): each has a `patient_refused` alert, and while any has one
the system has `patients_refused` (on `alerts/_system`). The service counts the events;
this module only decides them (docs/alerts.md).
"""

from __future__ import annotations

import math
from collections.abc import Container, Iterable, Sequence

import numpy as np

from monitor.core.alerts import AlertEvent
from monitor.core.types import AlertState, BoolArray, FloatArray

#: An open technical alert: (patient id, "" for the system; reason; vital or None).
Key = tuple[str, str, str | None]
#: An open alert as a snapshot keeps it: patient id ("" for the system), reason, vital or
#: None, and when it was raised.
Saved = tuple[str, str, str | None, float]
#: A patient's alerts whose watch the patient's restored state carries: its data closes them
#: (signal_lost, artifact, clock_skew), or its restored window, stuck-sensor or lost-vital
#: state does (clock_offset, warming_up, flatline, vital_lost).
RESUMABLE = frozenset(
    {
        "signal_lost",
        "artifact",
        "clock_skew",
        "clock_offset",
        "flatline",
        "vital_lost",
        "warming_up",
    }
)
#: Those of them that hold when only the patient's window bookkeeping is restored, not its
#: model state (a snapshot of another model): stuck sensors and lost vitals are the model's.
ROSTER_RESUMABLE = RESUMABLE - {"flatline", "vital_lost"}


class TechnicalAlarms:
    """Open technical alerts and refused patients.

    Args:
        model_version: Copied into every event.
        max_refused: Most refused patients tracked at once (each holds an open alert);
            past it a refused patient gets no alert of its own (the system one stands).
    """

    def __init__(self, model_version: str, max_refused: int) -> None:
        self.model_version = model_version
        self.max_refused = max_refused
        self._open: dict[Key, float] = {}  # -> when it was raised
        #: patient -> its open alert keys: a sample checks only its own patient.
        self.by_patient: dict[str, set[Key]] = {}
        #: patient -> open flatline alerts (`per_vital` looks only at rows with one).
        self.flat_open: dict[str, int] = {}
        #: patient -> open vital_lost alerts (the same).
        self.lost_open: dict[str, int] = {}
        self._counted = {"flatline": self.flat_open, "vital_lost": self.lost_open}
        # Refused patient -> time of its last refused sample, least recent first.
        self._refused: dict[str, float] = {}
        #: Patients not held by the window store with an open alert of a refused message
        #: (artifact, clock skew) -> its time, least recent first: they expire when silent.
        #: Read-only for callers (the pipeline's per-sample test of whether `held` has work).
        self.unheld: dict[str, float] = {}

    def __len__(self) -> int:
        return len(self._open)

    def is_open(self, pid: str | None, reason: str, vital: str | None = None) -> bool:
        """Whether this alert is open."""
        return (pid or "", reason, vital) in self._open

    def open(self, pid: str | None, reason: str, vital: str | None, now: float) -> list[AlertEvent]:
        """Raise the alert unless it is open; return the `raised` event, if any."""
        key = (pid or "", reason, vital)
        if key in self._open:
            return []
        self._open[key] = now
        self.by_patient.setdefault(key[0], set()).add(key)
        counts = self._counted.get(reason)
        if counts is not None and pid is not None:
            counts[pid] = counts.get(pid, 0) + 1
        return [self._event(pid, reason, vital, "raised", now)]

    def close(
        self,
        pid: str | None,
        reason: str,
        vital: str | None,
        now: float,
        state: AlertState = "cleared",
    ) -> list[AlertEvent]:
        """End the alert if it is open (`cleared`, or `expired`); return its event."""
        key = (pid or "", reason, vital)
        if self._open.pop(key, None) is None:
            return []
        mine = self.by_patient[key[0]]
        mine.discard(key)
        if not mine:
            del self.by_patient[key[0]]
        counts = self._counted.get(reason)
        if counts is not None and pid is not None:
            left = counts.pop(pid, 1) - 1
            if left:
                counts[pid] = left
        return [self._event(pid, reason, vital, state, now)]

    def close_all(
        self,
        pid: str,
        reasons: Iterable[str] | None,
        now: float,
        state: AlertState = "cleared",
        keep: Iterable[Key] = (),
    ) -> list[AlertEvent]:
        """End the patient's open alerts with these reasons (None: all of them), except the
        `keep` ones (an artifact the same sample still shows)."""
        mine = self.by_patient.get(pid)
        if not mine:
            return []
        wanted = None if reasons is None else set(reasons)
        kept = set(keep)
        # Sorted: set order varies between processes, alert order must not.
        keys = sorted(
            (k for k in mine if (wanted is None or k[1] in wanted) and k not in kept),
            key=lambda k: (k[1], k[2] or ""),
        )
        events: list[AlertEvent] = []
        for _, reason, vital in keys:
            events += self.close(pid, reason, vital, now, state)
        return events

    def export_open(self) -> list[Saved]:
        """Every open alert, with when it was raised, in a stable order (the snapshot)."""
        return sorted(
            ((pid, reason, vital, at) for (pid, reason, vital), at in self._open.items()),
            key=lambda s: (s[0], s[1], s[2] or ""),
        )

    def restore_open(
        self,
        saved: Iterable[Saved],
        held: Container[str],
        now: float,
        resumable: frozenset[str] = RESUMABLE,
    ) -> list[AlertEvent]:
        """Take over a snapshot's open alerts (this state machine holds none yet).

        A patient's alert whose watch its restored state carries (`resumable`, the patient
        `held` again) stays open, with no event: it clears as it would have without the
        restart, and is not raised twice. Every other one (a system-wide alert, a refused
        or unheld patient's) ends `expired` at `now`: this process does not watch it, and
        left open it would stay open at its consumers forever. Returns those events.
        """
        events: list[AlertEvent] = []
        for pid, reason, vital, at in saved:
            if pid and pid in held and reason in resumable:
                self.open(pid, reason, vital, at)
            else:
                events.append(self._event(pid or None, reason, vital, "expired", now))
        return events

    def per_vital(
        self,
        reason: str,
        vitals: Sequence[str],
        patient_ids: Sequence[str],
        t: Sequence[float],
        on: BoolArray,
        actual: FloatArray,
    ) -> list[AlertEvent]:
        """Open `reason` (`flatline`, `vital_lost`) on each vital flagged `on` in a row and
        close it on each other vital the row carries, at each row's time, rows in order. A
        vital missing from a row (`actual` NaN) keeps its alert as it is. Only rows with a
        flag, or whose patient has one open, are looked at, row by row: an alert opened by
        an earlier row of the batch is closable by a later row of the same patient,
        whatever the batch's size."""
        counts = self._counted[reason]
        flagged: list[bool] = np.any(on, axis=1).tolist()
        if not counts and True not in flagged:  # the common batch
            return []
        events: list[AlertEvent] = []
        for row, pid in enumerate(patient_ids):
            if not flagged[row] and pid not in counts:
                continue
            for i, vital in enumerate(vitals):
                if on[row, i]:
                    events += self.open(pid, reason, vital, t[row])
                elif not math.isnan(actual[row, i]):
                    events += self.close(pid, reason, vital, t[row])
        return events

    def open_unheld(self, pid: str, reason: str, vital: str | None, now: float) -> list[AlertEvent]:
        """`open` for a patient the window store does not hold: tracked (at most
        `max_refused` such patients, past it no alert) so that it expires when silent."""
        unheld = self.unheld
        if pid in unheld:
            del unheld[pid]
        elif len(unheld) >= self.max_refused:
            return []
        unheld[pid] = now
        return self.open(pid, reason, vital, now)

    def held(self, pid: str) -> None:
        """The window store took a sample of `pid`: its alerts end by data or eviction."""
        self.unheld.pop(pid, None)

    def silent_unheld(self, now: float, limit_s: float) -> list[str]:
        """Untracked patients with open alerts and nothing refused for more than `limit_s`."""
        return _older(self.unheld, now, limit_s)

    def forget_unheld(self, pid: str) -> None:
        """Stop tracking `pid` (its alerts were ended)."""
        self.unheld.pop(pid, None)

    @property
    def refused(self) -> int:
        """Patients refused now (each with an open `patient_refused` alert)."""
        return len(self._refused)

    def is_refused(self, pid: str) -> bool:
        """Whether the patient is refused now."""
        return pid in self._refused

    def refuse(self, pid: str, vital: str | None, now: float) -> list[AlertEvent]:
        """A refused sample of `pid`: its alert once per episode, the system's with the first."""
        refused = self._refused
        if pid in refused:
            del refused[pid]  # re-inserted last: least recent first
        elif len(refused) >= self.max_refused:
            return []
        refused[pid] = now
        events = self.open(pid, "patient_refused", vital, now)
        if events and len(refused) == 1:
            events += self.open(None, "patients_refused", None, now)
        return events

    def unrefuse(self, pid: str, now: float, state: AlertState = "cleared") -> list[AlertEvent]:
        """End the patient's refused episode (monitored now, or gone silent)."""
        if self._refused.pop(pid, None) is None:
            return []
        events = self.close_all(pid, ("patient_refused",), now, state)
        if not self._refused:
            events += self.close(None, "patients_refused", None, now)
        return events

    def shift_seen(self, before: float, step: float) -> None:
        """Move on by `step` the last refused sample time of every refused or unheld
        patient tracked at `before` or earlier (`WindowStore.shift_seen`): their order
        stays, least recent first."""
        for tracked in (self._refused, self.unheld):
            for pid, seen in tracked.items():
                if seen <= before:
                    tracked[pid] = seen + step

    def silent_refused(self, now: float, limit_s: float) -> list[str]:
        """Refused patients with no refused sample for more than `limit_s`."""
        return _older(self._refused, now, limit_s)

    def _event(
        self, pid: str | None, reason: str, vital: str | None, state: AlertState, now: float
    ) -> AlertEvent:
        return AlertEvent.technical(
            pid,  # None: a system-wide alert (monitoring degraded, patients refused)
            reason,
            state,
            t=now,
            model_version=self.model_version,
            vital=vital,
        )


def _older(times: dict[str, float], now: float, limit_s: float) -> list[str]:
    """The keys of an oldest-first dict whose time is more than `limit_s` before `now`."""
    out: list[str] = []
    for pid, at in times.items():
        if now - at <= limit_s:
            break
        out.append(pid)
    return out
