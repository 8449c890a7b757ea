"""The daemon's alert sink: a priority queue with a durable outbox, and its publisher.

Alerts are published at the address the transport's convention gives their patient (MQTT:
``alerts/<patient_id>`` at the configured QoS), one at a time on the current connection,
through the engine's `AlertPublisher` port: nothing here knows the transport. Technical
and system-wide alerts go before a backlog of physiological ones. Each alert is written to
the outbox (if enabled) when decided and deleted once the transport acknowledged it, so a
restart delivers what was left, in order.

An alert is never re-published on the connection that holds it in flight: delivery
waits for the acknowledgement or the loss of the connection (a frozen broker is dropped by
the watchdog), and only then does it go out again, on the next connection, with the same
`id`. Every alert not published at shutdown is counted and logged (`account_shutdown`).

An alert the broker receives and refuses (`PublishRefused`: an MQTT 5 broker's ACL without
write access to the alert topics) is not delivered: it is counted and logged, set aside,
and offered again after a wait that doubles from 1 s to 60 s, while the alerts behind it go
on; it stays in the outbox. An alert whose publication raises in the client (a library
fault, a limit of the client) is treated the same, with reason `client_error`: the
publisher never ends while the daemon serves. While any alert is refused and not yet
delivered the daemon is not ready (`refusing`) and `monitor_alerts_undeliverable` counts
them.

The sink also follows the open alerts (`service.ledger`, kept in the outbox file) and, when
the queues are empty, publishes each changed patient's state message, retained, at its
state address: its open alerts as they are when it goes out (so a late one never shows an
older state), an empty payload once none is open. Every new connection publishes them all
again (`resync`). A refused state message is counted and makes the daemon not ready like an
alert, and the state messages are offered again after the same waits.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import sqlite3
import time
from collections import deque
from collections.abc import Callable, Sequence

import structlog

from monitor.core.alerts import AlertEvent
from monitor.engine.transport import REFUSAL_REASONS, AlertPublisher, PublishRefused
from monitor.service.ledger import LedgerChange, OpenAlerts
from monitor.service.metrics import Metrics
from monitor.service.outbox import Outbox, StoredAlert

__all__ = ["AlertSink"]

log = structlog.get_logger("monitor")

#: Where a patient's alerts go by the transport's convention (None: system-wide alerts).
Address = Callable[[str | None], str]

#: The reason label of an alert whose publication raised in the client (not the broker's).
CLIENT_ERROR = "client_error"
#: The wait before a refused alert is offered again, doubled per refusal up to the cap.
RETRY_FIRST_S = 1.0
RETRY_CAP_S = 60.0


class AlertSink:
    """Holds alerts until the broker acknowledged them (the engine's `AlertSink` port:
    `publish` takes the events the engine decided, in order).

    Args:
        metrics: Where drops are counted.
        address: Each alert's address (`LiveTransport.alert_address`), kept with it in
            the outbox.
        max_pending: Most alerts held; past it the oldest physiological one is dropped
            (then the oldest technical one, then the one refused longest ago).
        outbox: The durable store, or None (alerts then live in memory only).
        clock: Monotonic seconds, for the waits after a refusal.
        state_address: Where each patient's state message goes (the open alerts,
            retained: `LiveTransport.state_address`); None: no state messages.
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        address: Address,
        max_pending: int,
        outbox: Outbox | None,
        clock: Callable[[], float] = time.monotonic,
        state_address: Address | None = None,
    ) -> None:
        self._metrics = metrics
        self._address = address
        self._limit = max_pending
        self._outbox = outbox
        self._clock = clock
        self._urgent: deque[StoredAlert] = deque()
        self._routine: deque[StoredAlert] = deque()
        self._in_flight: StoredAlert | None = None
        # Refused alerts set aside: (when to offer it again, tie-break, the alert).
        self._parked: list[tuple[float, int, StoredAlert]] = []
        self._parked_n = 0
        # Refusals of each alert refused and not yet delivered (or dropped), by id.
        self._refusals: dict[str, int] = {}
        self._ready = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        #: The open alerts (`service.ledger`), followed from every decided event.
        self.ledger = OpenAlerts()
        self._state_address = state_address
        # Patients ("" for system-wide) whose state message is due -> the ledger change it
        # must show at least (a change while one is in flight leaves it due).
        self._dirty: dict[str, int] = {}
        self._changes = 0
        # State messages refused and not delivered since (by patient), and when to try
        # again: one wait for all of them, doubled per refusal (an ACL refuses them all).
        self._state_refused: set[str] = set()
        self._state_refusals = 0
        self._state_due = 0.0
        # The system-wide state message at a graceful stop (`going_offline`), else None.
        self._offline: bytes | None = None
        metrics.alerts_undeliverable.set_function(self._undeliverable)
        for reason in (*REFUSAL_REASONS, CLIENT_ERROR):  # every series from the start, at 0
            metrics.alerts_refused.labels(reason)

    def __len__(self) -> int:
        held = len(self._urgent) + len(self._routine) + len(self._parked)
        return held + (self._in_flight is not None)

    @property
    def refusing(self) -> bool:
        """Some alert (or state message) was refused by the broker and has not been
        delivered since."""
        return bool(self._refusals) or bool(self._state_refused)

    def attach(self, outbox: Outbox) -> int:
        """Use `outbox` from now on, take the open alerts it kept and queue the alerts it
        kept from an earlier run, in decision order, ahead of anything decided in this run;
        return how many alerts it kept."""
        self._outbox = outbox
        _, skipped = self.ledger.load(outbox.open_alerts())
        if skipped:
            log.warning("open_alerts_unreadable", count=skipped, outbox=str(outbox.path))
        return self.restore()

    def resync(self) -> None:
        """A new connection: publish every patient's state message again (a broker
        restarted without persistence has lost the retained ones), and the system-wide one
        always (it replaces a `monitor_offline` left by this daemon's last will or stop)."""
        self._offline = None
        self._mark("")
        for patient in self.ledger.patients():
            self._mark(patient or "")

    def going_offline(self, state: bytes) -> None:
        """A graceful stop: publish `state` (the system-wide state message saying
        monitoring is offline) as the system's, after what is queued."""
        self._offline = state
        self._mark("")

    def _state(self, patient: str) -> bytes:
        if patient == "" and self._offline is not None:
            return self._offline
        return self.ledger.state(patient or None)

    def record(self, events: Sequence[AlertEvent]) -> None:
        """Follow events decided but not to be published (a shard's recovery found them
        published by its predecessor): the open alerts change all the same."""
        changes = self.ledger.apply(events)
        if changes:
            self._store((), changes)
        self._changed(changes)

    def _store(self, alerts: Sequence[StoredAlert], changes: Sequence[LedgerChange]) -> None:
        """Write alerts and open-alert changes to the outbox; a failure is logged and
        counted, and they go on from memory (not durable)."""
        if self._outbox is None:
            return
        try:
            self._outbox.add(alerts, changes)
        except sqlite3.Error as exc:
            self._metrics.outbox_write_failures.inc()
            log.error("outbox_write_failed", error=str(exc), alerts=len(alerts))

    def _changed(self, changes: Sequence[LedgerChange]) -> None:
        for patient, _, _ in changes:
            self._mark(patient)

    def _mark(self, patient: str) -> None:
        if self._state_address is None:
            return
        self._changes += 1
        self._dirty.pop(patient, None)  # to the back: in the order of the changes
        self._dirty[patient] = self._changes
        self._ready.set()
        self._idle.clear()

    def restore(self) -> int:
        """Queue what the outbox kept from an earlier run, in decision order; return how many."""
        if self._outbox is None:
            return 0
        kept = self._outbox.pending()
        self._urgent.extend(kept)  # all ahead of anything decided in this run
        if kept:
            self._ready.set()
            self._idle.clear()
        return len(kept)

    def publish(self, events: Sequence[AlertEvent]) -> None:
        """Queue alert events (stored in the outbox first); drop the oldest past the bound."""
        stored = [
            StoredAlert(
                None,
                e.id,
                self._address(e.patient_id),
                e.to_json(),
                e.kind == "technical" or e.patient_id is None,
            )
            for e in events
        ]
        changes = self.ledger.apply(events)
        if stored:
            self._store(stored, changes)
        dropped: list[StoredAlert] = []
        for event, alert in zip(events, stored, strict=True):
            if len(self) >= self._limit and (oldest := self._oldest()) is not None:
                dropped.append(oldest)
            if event.patient_id is None:
                self._urgent.appendleft(alert)  # system-wide (monitoring degraded): first
            else:
                (self._urgent if alert.urgent else self._routine).append(alert)
        if dropped:
            self._metrics.dropped.labels("alert_queue_full").inc(len(dropped))
            self._forget(dropped)
        if stored:
            self._ready.set()
            self._idle.clear()
        self._changed(changes)

    def _oldest(self) -> StoredAlert | None:
        """Remove and return the alert to drop at the bound; None when the only one held
        is in flight (`max_pending` 1: the new one is then held beside it)."""
        if self._routine or self._urgent:
            return (self._routine or self._urgent).popleft()
        if self._parked:
            _, _, alert = heapq.heappop(self._parked)
            self._refusals.pop(alert.id, None)
            return alert
        return None

    def _forget(self, alerts: list[StoredAlert]) -> None:
        if self._outbox is not None:
            seqs = [a.seq for a in alerts if a.seq is not None]
            with contextlib.suppress(sqlite3.Error):
                self._outbox.remove(seqs)

    def _next(self) -> StoredAlert | None:
        now = self._clock()
        while self._parked and self._parked[0][0] <= now:  # due again: ahead of its queue
            _, _, alert = heapq.heappop(self._parked)
            (self._urgent if alert.urgent else self._routine).appendleft(alert)
        for queue in (self._urgent, self._routine):
            if queue:
                return queue.popleft()
        return None

    def _park(
        self, alert: StoredAlert, reason: str, detail: str, event: str = "alert_refused"
    ) -> None:
        """Count, log and set aside an alert the broker refused (or the client failed to
        publish: `CLIENT_ERROR`); offer it again later."""
        n = self._refusals.get(alert.id, 0) + 1
        self._refusals[alert.id] = n
        wait = self._refused(event, reason, detail, n, urgent=alert.urgent, refusals=n)
        self._parked_n += 1
        heapq.heappush(self._parked, (self._clock() + wait, self._parked_n, alert))

    def _refused(self, event: str, reason: str, detail: str, n: int, **fields: object) -> float:
        """Count and log the `n`-th refusal in a row (the broker's, or the client's:
        `CLIENT_ERROR`) of an alert or of the state messages; return the wait before it is
        offered again: 1 s, doubled per refusal up to 60 s."""
        wait: float = min(RETRY_FIRST_S * 2.0 ** (n - 1), RETRY_CAP_S)
        self._metrics.alerts_refused.labels(reason).inc()
        # No topic in the log line: it carries the patient id.
        log.error(
            event,
            reason=reason,
            **{"error" if reason == CLIENT_ERROR else "broker_said": detail},
            **fields,
            retry_in_s=wait,
            undeliverable=self._undeliverable(),
        )
        return wait

    def _undeliverable(self) -> int:
        """Alerts and patients' state messages refused and not delivered since."""
        return len(self._refusals) + len(self._state_refused)

    async def run(
        self, current: Callable[[], AlertPublisher | None], connected: asyncio.Event
    ) -> None:
        """Publish forever on the current connection (a task; cancel it to stop).

        Args:
            current: Returns the current connection's publisher, None while disconnected.
            connected: Set while a connection is in use.
        """
        while True:
            alert = self._next()
            if alert is None:
                patient = self._state_due_now()
                if patient is not None:  # the alerts first, then the state messages
                    await self._send_state(patient, current, connected)
                    continue
                self._ready.clear()
                due = self._next_due()
                if due is None:
                    self._idle.set()
                    await self._ready.wait()
                    continue
                # Only refused ones left: wait for the first to be due, or a new alert.
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), max(due - self._clock(), 0.0))
                continue
            self._in_flight = alert
            try:
                await self._deliver(alert.topic, alert.payload, current, connected)
            except PublishRefused as refused:
                self._park(alert, refused.reason, refused.detail)
                continue
            except asyncio.CancelledError:
                # Not acknowledged: back at the head, counted by `account_shutdown`.
                (self._urgent if alert.urgent else self._routine).appendleft(alert)
                raise
            except Exception as exc:  # one alert's fault, never the publisher's end
                # A fault in the client library, or this alert beyond one of its limits:
                # kept and offered again like a refused alert, and the publisher goes on.
                # Before, the task ended here and no alert was published again until a
                # restart, with the daemon ready all along.
                self._park(alert, CLIENT_ERROR, _client_error(exc), event="alert_publish_failed")
                continue
            finally:
                self._in_flight = None
            self._refusals.pop(alert.id, None)
            self._forget([alert])

    def _state_due_now(self) -> str | None:
        """The patient whose state message goes next ("" for system-wide), if one is due."""
        if self._dirty and self._clock() >= self._state_due:
            return next(iter(self._dirty))
        return None

    def _next_due(self) -> float | None:
        """When the first refused alert or state message may be offered again (None:
        nothing waits)."""
        dues = [self._parked[0][0]] if self._parked else []
        if self._dirty:
            dues.append(self._state_due)
        return min(dues, default=None)

    async def _send_state(
        self,
        patient: str,
        current: Callable[[], AlertPublisher | None],
        connected: asyncio.Event,
    ) -> None:
        """Publish the patient's state message (retained): its open alerts as they are
        when it goes out, so a late one never shows an older state than the last."""
        change = self._dirty[patient]
        assert self._state_address is not None  # only marked with an address
        topic = self._state_address(patient or None)
        try:
            await self._deliver(topic, lambda: self._state(patient), current, connected, True)
        except PublishRefused as refused:
            self._state_not_sent(patient, refused.reason, refused.detail)
            return
        except Exception as exc:  # a client fault: offered again later, as an alert is
            self._state_not_sent(patient, CLIENT_ERROR, _client_error(exc))
            return
        if self._dirty.get(patient) == change:
            del self._dirty[patient]
        self._state_refused.discard(patient)
        if not self._state_refused:
            self._state_refusals = 0

    def _state_not_sent(self, patient: str, reason: str, detail: str) -> None:
        """Count and log a refused state message; offer the state messages again later."""
        self._state_refused.add(patient)
        self._state_refusals += 1
        wait = self._refused("alert_state_refused", reason, detail, self._state_refusals)
        self._state_due = self._clock() + wait

    async def _deliver(
        self,
        topic: str,
        payload: bytes | Callable[[], bytes],
        current: Callable[[], AlertPublisher | None],
        connected: asyncio.Event,
        retain: bool = False,
    ) -> None:
        """Publish on the current connection until one acknowledges it; `payload` is read
        afresh for each connection where it is a function (a state message)."""
        while True:
            conn = current()
            if conn is None:
                await connected.wait()
                continue
            body = payload() if callable(payload) else payload
            if await conn.publish(topic, body, retain):
                return
            # The connection was lost with the alert in flight: wait for the next one.
            while current() is conn:  # noqa: ASYNC110 - no event marks the intake letting go
                await asyncio.sleep(0.05)

    async def wait_delivered(self, timeout_s: float) -> bool:
        """Wait until nothing is left to publish, at most `timeout_s`; True if so."""
        if timeout_s <= 0:
            return not len(self)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._idle.wait(), timeout_s)
        return not len(self)

    def account_shutdown(self) -> None:
        """Count and log every alert not published; close the outbox (which keeps them)."""
        left = len(self)
        if left:
            kept = left if self._outbox is not None else 0
            if left - kept:
                self._metrics.dropped.labels("shutdown").inc(left - kept)
            # Past the grace period or with the broker gone: never silently lost.
            log.warning(
                "alerts_not_published",
                count=left,
                kept_in_outbox=kept,
                outbox=str(self._outbox.path) if self._outbox is not None else None,
            )
        if self._outbox is not None:
            self._outbox.close()


def _client_error(exc: Exception) -> str:
    """A client fault in one line for the log: its type and message, at most 160 chars."""
    return f"{type(exc).__name__}: {exc}"[:160]
