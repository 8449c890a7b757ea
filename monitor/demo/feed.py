"""The alert feed: what a downstream consumer sees, subscribed to the daemon's alert topic
and to its state messages (each patient's open alerts, retained: docs/alerts.md)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter, deque
from dataclasses import dataclass

from pydantic import ValidationError

from monitor.core.alerts import AlertEvent, OpenAlertsMessage
from monitor.transports.mqtt.client import connect
from monitor.transports.mqtt.config import BrokerConfig


@dataclass(frozen=True, slots=True)
class Seen:
    """An alert event and when the demo received it.

    Attributes:
        event: The published alert event.
        at: Monotonic receive time, seconds.
    """

    event: AlertEvent
    at: float


class AlertFeed:
    """Subscribes to ``<prefix>/#`` and keeps the most recent alert events.

    Args:
        broker: The broker the daemon publishes to.
        topic_prefix: The daemon's alert topic prefix (`alerts`).
        keep: How many recent events to keep.
        state_prefix: The daemon's state message prefix (`alert-state`).
    """

    def __init__(
        self,
        broker: BrokerConfig,
        topic_prefix: str = "alerts",
        keep: int = 8,
        state_prefix: str = "alert-state",
    ) -> None:
        self.broker = broker
        self.topic = f"{topic_prefix}/#"
        self.state_topic = f"{state_prefix}/#"
        self._state_root = f"{state_prefix}/"
        #: Open alerts by state topic (a patient, or the system), from the state messages.
        self.open: dict[str, int] = {}
        self.recent: deque[Seen] = deque(maxlen=keep)
        self.received = 0
        #: Events received by state (raised, escalated, cleared), and raises by kind.
        self.states: Counter[str] = Counter()
        self.raised: Counter[str] = Counter()
        self.first_at: float | None = None
        self.protocol: str | None = None
        self.subscribed = asyncio.Event()

    async def run(self) -> None:
        """Receive alert events until cancelled."""
        async with connect(self.broker) as conn:
            await conn.client.subscribe(self.topic, qos=1)
            await conn.client.subscribe(self.state_topic, qos=1)
            self.protocol = conn.protocol
            self.subscribed.set()
            async for message in conn.client.messages:
                if message.topic.value.startswith(self._state_root):
                    payload = message.payload
                    self.state(message.topic.value, payload if isinstance(payload, bytes) else b"")
                    continue
                try:
                    event = AlertEvent.model_validate_json(message.payload)
                except ValidationError:
                    continue  # not ours: someone else publishes under the prefix
                self.add(event, time.monotonic())

    def add(self, event: AlertEvent, at: float) -> None:
        """Record one event received at monotonic time `at`."""
        self.received += 1
        self.states[event.state] += 1
        if event.state == "raised":
            self.raised[event.kind] += 1
        if self.first_at is None:
            self.first_at = at
        self.recent.append(Seen(event, at))

    def state(self, topic: str, payload: bytes) -> None:
        """Take one state message (empty: nothing open on that topic any more)."""
        if not payload:
            self.open.pop(topic, None)
            return
        try:
            message = OpenAlertsMessage.model_validate_json(payload)
        except ValidationError:
            return  # not ours
        self.open[topic] = len(message.open)

    def open_now(self) -> str:
        """The patients' open alerts the state messages show (the system-wide ones, such as
        `monitor_offline` after the daemon stopped, aside): ``open now: 7 alerts on 5
        patients``."""
        patients = [n for topic, n in self.open.items() if "/_system" not in topic]
        alerts, held = sum(patients), len(patients)
        return (
            f"open now: {alerts} alert{'' if alerts == 1 else 's'} "
            f"on {held} patient{'' if held == 1 else 's'}"
        )

    def breakdown(self) -> str:
        """What the events were: ``118 alert events: 56 raised (48 physiological, 8
        technical), 10 escalated, 52 cleared; open now: 4 alerts on 4 patients``."""
        raised = ", ".join(f"{self.raised[k]} {k}" for k in ("physiological", "technical"))
        return (
            f"{self.received} alert events: {self.states['raised']} raised ({raised}), "
            f"{self.states['escalated']} escalated, {self.states['cleared']} cleared; "
            f"{self.open_now()}"
        )

    def since(self, count: int) -> list[Seen]:
        """The events received after the first `count` (those still kept)."""
        new = self.received - count
        return list(self.recent)[-new:] if new > 0 else []
