"""The open alerts: every alert the daemon raised and has not ended, as its consumers see it.

Kept from the alert events the engine decides, in decision order (a raise or an escalation
opens or updates an alert, a clear or an expiry ends it), so it is what the event stream
says, whatever was delivered yet. Two uses (docs/alerts.md, "Open alerts"):

* **A consumer that connects late** (a central station restarted at night) learns every
  open alert from one retained message per patient (`AlertSink`: the state topic), instead
  of waiting for alerts that were raised once, before it listened.
* **Nothing stays open at the consumers that the engine no longer watches.** `orphans`
  lists the open alerts the engine does not hold (a cold start, a snapshot refused, another
  model, a patient evicted with a physiological episode open): each ends with an `expired`
  event, as the technical alerts of a forgotten patient always did.

With the outbox enabled the ledger is kept in the outbox file (same transaction as the
alerts), so a restart knows what its consumers were shown.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from monitor.core.alerts import AlertEvent, OpenAlertsMessage

__all__ = ["LedgerChange", "OpenAlerts", "alert_key"]

#: One change of the ledger for its store: (patient or "", alert key, the event's JSON;
#: None when the alert ended).
LedgerChange = tuple[str, str, bytes | None]


def alert_key(event: AlertEvent) -> str:
    """Which alert an event belongs to, within its patient: a physiological alert is one
    vital's episode (its rule may change on escalation); a technical alert is its vital and
    reason."""
    reason = (event.reason or "") if event.kind == "technical" else ""
    return f"{event.kind}|{event.vital or ''}|{reason}"


class OpenAlerts:
    """Open alerts by patient (None: system-wide), each with its latest event."""

    def __init__(self) -> None:
        self._open: dict[str, dict[str, AlertEvent]] = {}

    def __len__(self) -> int:
        return sum(len(alerts) for alerts in self._open.values())

    def apply(self, events: Iterable[AlertEvent]) -> list[LedgerChange]:
        """Follow decided events, in order; return the changes (for the durable store)."""
        changes: list[LedgerChange] = []
        for event in events:
            pid = event.patient_id or ""
            key = alert_key(event)
            mine = self._open.get(pid)
            if event.state in ("raised", "escalated"):
                if mine is None:
                    mine = self._open[pid] = {}
                mine[key] = event
                changes.append((pid, key, event.to_json()))
            elif mine is not None and mine.pop(key, None) is not None:
                if not mine:
                    del self._open[pid]
                changes.append((pid, key, None))
        return changes

    def load(self, rows: Iterable[tuple[str, str, bytes]]) -> tuple[int, int]:
        """Take the store's rows (an earlier run's open alerts); return how many were taken
        and how many were unreadable (skipped: a damaged row never stops a start)."""
        taken = skipped = 0
        for pid, key, payload in rows:
            try:
                event = AlertEvent.model_validate_json(payload)
            except ValueError:  # pydantic's ValidationError is one
                skipped += 1
                continue
            self._open.setdefault(pid, {})[key] = event
            taken += 1
        return taken, skipped

    def patients(self) -> list[str | None]:
        """The patients with an open alert (None: system-wide ones)."""
        return [pid or None for pid in self._open]

    def events(self, patient_id: str | None) -> list[AlertEvent]:
        """A patient's open alerts (latest event of each), in a stable order."""
        mine = self._open.get(patient_id or "", {})
        return [mine[key] for key in sorted(mine)]

    def state(self, patient_id: str | None) -> bytes:
        """The patient's state message: its open alerts, or b"" when none is open (a
        retained empty message deletes the retained one)."""
        events = self.events(patient_id)
        if not events:
            return b""
        return OpenAlertsMessage(patient_id=patient_id, open=events).to_json()

    def orphans(
        self, holds: Callable[[AlertEvent], bool], now: float, model_version: str
    ) -> list[AlertEvent]:
        """The `expired` events of the open alerts the engine does not hold (`holds`):
        nothing watches them any more. Not applied: pass them on like any decided event."""
        # Every housekeeping pass walks them all: nothing is sorted unless one is found.
        found = [e for mine in self._open.values() for e in mine.values() if not holds(e)]
        found.sort(key=lambda e: (e.patient_id or "", alert_key(e)))
        return [_expired(event, now, model_version) for event in found]


def _expired(event: AlertEvent, now: float, model_version: str) -> AlertEvent:
    return AlertEvent(
        kind=event.kind,
        patient_id=event.patient_id,
        vital=event.vital,
        state="expired",
        severity=event.severity,
        t=now,
        seq=None,
        threshold=event.threshold,
        model_version=model_version,
        reason=event.reason,
    )
