"""The live transport's ports: what a transport adapter gives the daemon shell, and back.

A live transport (`monitor.transports.mqtt.ingress.MqttIngress`; a second transport is one
new adapter package beside it) connects, subscribes, reconnects and hands what it receives
to the shell, keyed by patient id by its own convention; the shell stamps each burst with
its clock as an `IngressBatch` when it ingests it. Alerts go back through the
`AlertPublisher` the transport hands over with each connection, to the address its
convention gives a patient (`LiveTransport.alert_address`). Nothing here is asynchronous
code: the methods marked ``async`` are awaited by the shell's event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

__all__ = [
    "REFUSAL_REASONS",
    "AlertPublisher",
    "Keyed",
    "Link",
    "LiveTransport",
    "PublishRefused",
    "Shell",
]

#: A payload and the patient id its transport delivered it for (None: it names none).
Keyed = tuple[str | None, bytes]


#: Why a broker refuses a publication it received (MQTT 5 PUBACK reason codes; `other` for
#: any code not named here): a fixed set, usable as a metric label.
REFUSAL_REASONS: tuple[str, ...] = (
    "not_authorized",
    "topic_name_invalid",
    "quota_exceeded",
    "payload_format_invalid",
    "packet_identifier_in_use",
    "implementation_specific_error",
    "unspecified_error",
    "other",
)


class PublishRefused(Exception):
    """The broker received a publication and refused it (an ACL without write access to
    the alert topics, a quota): it is not delivered, and sending it again on the same
    terms is refused again.

    Attributes:
        reason: One of `REFUSAL_REASONS`.
        detail: The broker's own words for it.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason if reason in REFUSAL_REASONS else "other"
        self.detail = detail


class AlertPublisher(Protocol):
    """Publishes on one connection (the transport's QoS and delivery guarantee)."""

    async def publish(self, address: str, payload: bytes, retain: bool = False) -> bool:
        """Publish once; True when delivered (acknowledged), False when the connection was
        lost first (the caller publishes it again on the next one). Never re-sends.
        `retain`: the broker keeps it for later subscribers (an empty payload deletes the
        one kept): the state messages.

        Raises:
            PublishRefused: The broker acknowledged it with a refusal (MQTT 5 reason code;
                an MQTT 3.1.1 broker cannot say so and acknowledges what it drops).
        """


class Link(Protocol):
    """One connection's liveness, for the shell's intake loop."""

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` once the connection is gone."""

    def raise_if_lost(self) -> None:
        """Raise the transport's connection error once the connection is gone."""


class Shell(Protocol):
    """What the daemon shell gives a live transport (`LiveTransport.run`)."""

    def stopping(self) -> bool:
        """A graceful stop was requested."""

    async def wait_stop(self) -> None:
        """Return once a graceful stop is requested."""

    def grace_left(self, reserve_s: float = 0.0) -> float:
        """Seconds left of the shutdown grace period, less `reserve_s`."""

    def received(self, messages: list[Keyed]) -> None:
        """Count and queue keyed payloads, in arrival order (the hot path)."""

    def refused(self, reason: str) -> None:
        """Count a unit the transport refused (``topic_not_utf8``, ``packet_too_large``,
        ``wrong_partition``): one received unit with one outcome."""

    def note(self, event: str, warning: bool = False, **fields: object) -> None:
        """Log a lifecycle event (``subscribed``, ``broker_connection_lost``, ...)."""

    async def going_live(self, subscribe: Callable[[], Awaitable[None]]) -> None:
        """Run `subscribe` (the shell may do work around it: a shard's stream recovery)."""

    def last_will(self) -> tuple[str, bytes] | None:
        """What the broker publishes, retained, at the alert connection's address if that
        connection ends without a goodbye (the process killed, the host gone, the loop
        held past the keepalive): the system-wide state message saying monitoring is
        offline. None: no last will. Asked at each connect."""

    def connected(self, publisher: AlertPublisher) -> None:
        """Subscribed: intake is live and alerts may be published through `publisher`."""

    def disconnected(self) -> None:
        """The connection is gone (or never came)."""

    def reconnecting(self) -> None:
        """A reconnect follows (counted)."""

    async def consume(self, link: Link) -> None:
        """Drain the intake until `link` is lost (then raise its error) or cancelled."""

    def drain(self) -> None:
        """Ingest everything received so far (a lost connection's last messages)."""

    async def finish(self) -> float:
        """Graceful stop, intake closed: score what was received and publish the alerts
        within the grace period; return the seconds left for the transport to disconnect."""

    async def final_flush(self) -> None:
        """Score everything pending (the transport's run is over)."""


class LiveTransport(Protocol):
    """A live transport adapter: connect, subscribe, reconnect, deliver to the shell."""

    #: Where it connects, for the startup log line (no credentials).
    endpoint: str

    def alert_address(self, patient_id: str | None) -> str:
        """Where a patient's alerts go (None: system-wide alerts)."""

    def state_address(self, patient_id: str | None) -> str:
        """Where a patient's state message goes, retained (its open alerts)."""

    async def run(self, shell: Shell) -> None:
        """Serve until the shell stops: connect, subscribe, deliver, reconnect on loss;
        on a graceful stop close intake, let the shell `finish`, disconnect; end with the
        shell's `final_flush`."""
