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
    """

    def __init__(
        self,
        metrics: Metrics,
        *,
        address: Address,
        max_pending: int,
        outbox: Outbox | None,
        clock: Callable[[], float] = time.monotonic,
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
        metrics.alerts_undeliverable.set_function(lambda: len(self._refusals))
        for reason in (*REFUSAL_REASONS, CLIENT_ERROR):  # every series from the start, at 0
            metrics.alerts_refused.labels(reason)

    def __len__(self) -> int:
        held = len(self._urgent) + len(self._routine) + len(self._parked)
        return held + (self._in_flight is not None)

    @property
    def refusing(self) -> bool:
        """Some alert was refused by the broker and has not been delivered since."""
        return bool(self._refusals)

    def attach(self, outbox: Outbox) -> int:
        """Use `outbox` from now on and queue what it kept from an earlier run, in decision
        order, ahead of anything decided in this run; return how many it kept."""
        self._outbox = outbox
        return self.restore()

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
        if self._outbox is not None and stored:
            try:
                self._outbox.add(stored)
            except sqlite3.Error as exc:  # still published from memory; not durable
                log.error("outbox_write_failed", error=str(exc), alerts=len(stored))
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
        wait = min(RETRY_FIRST_S * 2 ** (n - 1), RETRY_CAP_S)
        self._parked_n += 1
        heapq.heappush(self._parked, (self._clock() + wait, self._parked_n, alert))
        self._metrics.alerts_refused.labels(reason).inc()
        # No topic in the log line: it carries the patient id.
        log.error(
            event,
            reason=reason,
            **{"error" if reason == CLIENT_ERROR else "broker_said": detail},
            urgent=alert.urgent,
            refusals=n,
            retry_in_s=wait,
            undeliverable=len(self._refusals),
        )

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
                self._ready.clear()
                if not self._parked:
                    self._idle.set()
                    await self._ready.wait()
                    continue
                # Only refused alerts left: wait for the first to be due, or a new alert.
                due = self._parked[0][0] - self._clock()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._ready.wait(), max(due, 0.0))
                continue
            self._in_flight = alert
            try:
                await self._deliver(alert, current, connected)
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
                detail = f"{type(exc).__name__}: {exc}"[:160]
                self._park(alert, CLIENT_ERROR, detail, event="alert_publish_failed")
                continue
            finally:
                self._in_flight = None
            self._refusals.pop(alert.id, None)
            self._forget([alert])

    async def _deliver(
        self,
        alert: StoredAlert,
        current: Callable[[], AlertPublisher | None],
        connected: asyncio.Event,
    ) -> None:
        while True:
            conn = current()
            if conn is None:
                await connected.wait()
                continue
            if await conn.publish(alert.topic, alert.payload):
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
