"""The daemon's MQTT transport (the engine's `LiveTransport` port): connection lifecycle.

Connect (protocol fallback, packet size limit), subscribe, hand every payload to the shell
keyed by its topic's patient id (`topics.patient_of`), drop a silent connection (the
watchdog), reconnect with jittered exponential backoff forever (a refused login, TLS
handshake or subscription waits `refused_retry_s`), and on a graceful stop unsubscribe,
let the shell score and publish within the grace period, then DISCONNECT. Alerts go to
``<alerts prefix>/<patient_id>`` (``/_system`` or ``/_system/<K>`` for system-wide ones)
at the configured QoS, one publish at a time.

Under ``protocol=auto`` without a persistent session the vitals come in on MQTT 3.1.1 (paho
parses MQTT 5 properties on every incoming message, a fifth of the daemon's CPU at 10,000
msg/s) and the alerts go out on a second connection of their own, MQTT 5 where the broker
speaks it: only an MQTT 5 PUBACK can say that the broker refused an alert (an ACL without
write access), and a 3.1.1 broker acknowledges what it drops. Either connection lost ends
both, and both are made again.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Sequence
from typing import Any

import aiomqtt
from paho.mqtt.reasoncodes import ReasonCode

from monitor.engine.transport import Keyed, Shell
from monitor.transports.mqtt.client import (
    Connection,
    connect,
    reconnect_delay,
    watch_silence,
)
from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.errors import BrokerAuthError, BrokerError, BrokerTLSError
from monitor.transports.mqtt.reader import MessageSink
from monitor.transports.mqtt.topics import SYSTEM_TOPIC_ID, PartitionCheck, patient_of

__all__ = ["PACKET_HEADROOM_BYTES", "MqttIngress"]

#: Room for the topic and the MQTT header above the largest payload: a larger packet drops
#: the connection (a payload between the two is refused by the codec, counted).
PACKET_HEADROOM_BYTES = 4096


class _Publisher:
    """Alerts on one connection at one QoS (the engine's `AlertPublisher`)."""

    __slots__ = ("_conn", "_qos")

    def __init__(self, conn: Connection, qos: int) -> None:
        self._conn, self._qos = conn, qos

    async def publish(self, address: str, payload: bytes, retain: bool = False) -> bool:
        return await self._conn.publish(address, payload, self._qos, retain)


class MqttIngress:
    """The MQTT transport of `monitor run`.

    Args:
        broker: Where and how to connect.
        topics: The topic filters to subscribe to.
        qos: The subscription QoS.
        max_payload_bytes: The largest payload; packets past it plus
            `PACKET_HEADROOM_BYTES` drop the connection.
        persistent_session: Keep the broker session across restarts (MQTT 5 only if so).
        session_expiry_s: Its expiry (MQTT 5).
        reconnect_min_s: First reconnect backoff step.
        reconnect_max_s: Its cap.
        refused_retry_s: Wait after a refused login or TLS handshake.
        alerts_prefix: Alerts go to ``<alerts_prefix>/<patient_id>``.
        alerts_qos: Their QoS.
        state_prefix: Each patient's state message goes to ``<state_prefix>/<patient_id>``.
        system_id: The last level(s) of the system alerts' topic.
        partitions: A shard's partition check (topics ``<prefix>/<k>/<id>``), or None.
    """

    def __init__(
        self,
        broker: BrokerConfig,
        topics: Sequence[str],
        *,
        qos: int,
        max_payload_bytes: int,
        persistent_session: bool,
        session_expiry_s: int,
        reconnect_min_s: float,
        reconnect_max_s: float,
        refused_retry_s: float,
        alerts_prefix: str,
        alerts_qos: int,
        state_prefix: str = "alert-state",
        system_id: str = SYSTEM_TOPIC_ID,
        partitions: PartitionCheck | None = None,
    ) -> None:
        #: The alerts' own connection (None: the vitals' connection carries them too).
        self._alerts_broker: BrokerConfig | None = None
        if broker.protocol == "auto" and not persistent_session:
            # MQTT 5 buys the vitals only session expiry; paho parses v5 properties on every
            # incoming PUBLISH, a large share of the daemon's CPU (docs/benchmarks.md). The
            # alerts need MQTT 5's PUBACK reason codes: their own connection, 5 first.
            alerts_id = None if broker.client_id is None else f"{broker.client_id}-alerts"
            self._alerts_broker = broker.model_copy(update={"client_id": alerts_id})
            broker = broker.model_copy(update={"protocol": "3.1.1"})
        self._broker = broker
        self.endpoint = broker.url
        self.topics = list(topics)
        self._qos = qos
        self.max_packet_bytes = max_payload_bytes + PACKET_HEADROOM_BYTES
        self._persistent = persistent_session
        self._expiry = session_expiry_s
        self._backoff = (reconnect_min_s, reconnect_max_s)
        self._refused_retry_s = refused_retry_s
        self._alerts_prefix = alerts_prefix
        self._alerts_qos = alerts_qos
        self._state_prefix = state_prefix
        self._system_id = system_id
        self._partitions = partitions

    def alert_address(self, patient_id: str | None) -> str:
        """``<alerts prefix>/<patient_id>``, or the system alerts' topic for None."""
        return f"{self._alerts_prefix}/{patient_id or self._system_id}"

    def state_address(self, patient_id: str | None) -> str:
        """``<state prefix>/<patient_id>``, or the system alerts' state topic for None."""
        return f"{self._state_prefix}/{patient_id or self._system_id}"

    async def run(self, shell: Shell) -> None:
        """Serve until the shell stops (see the module docstring)."""
        attempt = 0
        while not shell.stopping():
            refused = False
            try:
                async with contextlib.AsyncExitStack() as links:
                    # The last will goes with the connection that carries the alerts.
                    will = self._will(shell)
                    own = self._alerts_broker  # the alerts' own connection, if any
                    conn = await links.enter_async_context(
                        connect(
                            self._broker,
                            clean_session=not self._persistent,
                            session_expiry_s=self._expiry if self._persistent else None,
                            will=None if own is not None else will,
                            on_message=self.sink(shell),
                            on_refused=lambda reason: self._refused(shell, reason),
                            max_packet_bytes=self.max_packet_bytes,
                        )
                    )
                    alerts = conn
                    if own is not None:
                        # Nothing subscribed: only acknowledgements and pings come back.
                        alerts = await links.enter_async_context(connect(own, will=will))
                    await shell.going_live(functools.partial(self._subscribe, conn))
                    attempt = 0
                    shell.connected(_Publisher(alerts, self._alerts_qos))
                    shell.note(
                        "subscribed",
                        topics=self.topics,
                        protocol=conn.protocol,
                        alerts_protocol=alerts.protocol,
                    )
                    await self._serve(conn, alerts, shell)
            except (BrokerAuthError, BrokerTLSError) as exc:
                # Not transient: say so clearly and wait long, never a tight reconnect loop.
                shell.note(
                    "broker_refused", warning=True, error=str(exc), retry_in_s=self._refused_retry_s
                )
                refused = True
            except (aiomqtt.MqttError, BrokerError, OSError) as exc:
                shell.note("broker_connection_lost", warning=True, error=str(exc))
            finally:
                shell.disconnected()
            if shell.stopping():
                break
            shell.reconnecting()
            # Capped low (reconnect_max_s): a broker that comes back is found within ~2 s.
            delay = self._refused_retry_s if refused else reconnect_delay(attempt, *self._backoff)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(shell.wait_stop(), delay)
        await shell.final_flush()

    def _will(self, shell: Shell) -> aiomqtt.Will | None:
        """The shell's last will, retained at the alerts' QoS (None: none)."""
        will = shell.last_will()
        if will is None:
            return None
        topic, payload = will
        return aiomqtt.Will(topic, payload, qos=self._alerts_qos, retain=True)

    def sink(self, shell: Shell) -> MessageSink:
        """The reader's message sink: each (topic, payload) keyed by its patient id; a
        shard's topics checked against its partitions first."""
        received = shell.received
        check = self._partitions
        if check is None:

            def keyed(messages: list[tuple[str, bytes]]) -> None:
                received([(patient_of(topic), payload) for topic, payload in messages])

            return keyed
        accepts = check.accepts

        def guarded(messages: list[tuple[str, bytes]]) -> None:
            kept: list[Keyed] = []
            for topic, payload in messages:
                if accepts(topic):
                    kept.append((patient_of(topic), payload))
                else:
                    shell.refused("wrong_partition")
            if kept:
                received(kept)

        return guarded

    def _refused(self, shell: Shell, reason: str) -> None:
        shell.refused(reason)
        if reason == "packet_too_large":
            # The connection is dropped with it: logged each time (at most once a connection).
            shell.note("broker_packet_too_large", warning=True, limit_bytes=self.max_packet_bytes)

    async def _subscribe(self, conn: Connection) -> None:
        """Subscribe to each filter; a filter the broker refuses is a refusal, not a
        subscription: nothing would ever arrive on it while the daemon said it was live.

        Raises:
            BrokerAuthError: The SUBACK refused a filter (NATS answers 0x80 to a user
                without subscribe permission on it; Mosquitto grants and filters instead).
        """
        for topic in self.topics:
            for code in await conn.client.subscribe(topic, qos=self._qos):
                # A failure is 0x80 or more (3.1.1's one code, MQTT 5's reason codes).
                if (code.value if isinstance(code, ReasonCode) else code) >= 0x80:
                    raise BrokerAuthError(
                        f"broker refused the subscription to {topic!r}: {code} "
                        "(does the account have read permission on it?)",
                        url=self.endpoint,
                    )

    async def _serve(self, conn: Connection, alerts: Connection, shell: Shell) -> None:
        consume = asyncio.create_task(shell.consume(conn), name="consume")
        stopping = asyncio.create_task(shell.wait_stop(), name="stop-wait")
        keepalive = self._broker.keepalive
        links = {"vitals": conn} if alerts is conn else {"vitals": conn, "alerts": alerts}

        silent: list[str] = []

        def watch(name: str, link: Connection) -> asyncio.Task[None]:
            def on_silent(silent_s: float) -> None:
                # The watchdog drops the connection next; serving then ends: reconnect. A
                # dead link silences both connections: said once.
                silent.append(name)
                if len(silent) > 1:
                    return
                shell.note(
                    "broker_silent",
                    warning=True,
                    silent_s=round(silent_s, 2),
                    keepalive_s=keepalive,
                    connection=name,
                )

            return asyncio.create_task(watch_silence(link, keepalive, on_silent), name=name)

        watchdogs = [watch(name, link) for name, link in links.items()]
        # The alerts' own connection lost ends serving too (shielded: aiomqtt's future).
        alerts_lost = None if alerts is conn else asyncio.shield(alerts.lost)
        waits: set[asyncio.Future[Any]] = {consume, stopping}
        if alerts_lost is not None:
            waits.add(alerts_lost)
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
            for watchdog in watchdogs:
                watchdog.cancel()
            if alerts_lost is not None:
                alerts_lost.cancel()
        failed = consume.done()  # its connection is gone (it raises why)
        gone = [name for name, link in links.items() if link.lost.done()]
        if not failed:  # stop intake
            consume.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await consume
        if failed or gone:
            # One connection is gone: end both. What the queue still holds was received
            # (and acknowledged): handle it now, or it would vanish uncounted with the old
            # client. The other connection is shut, not DISCONNECTed: on a frozen link
            # (both go silent together) a DISCONNECT would wait for an answer in vain.
            shell.drain()
            for link in links.values():
                if not link.lost.done():
                    link.drop()
            if failed:
                consume.result()  # re-raises the connection error: reconnect
            raise aiomqtt.MqttError(f"connection lost ({', '.join(gone)})")
        # Graceful stop: score what was already received, publish, disconnect, all within
        # the grace period (a frozen broker answers nothing: each wait is bounded).
        if not self._persistent:
            with contextlib.suppress(aiomqtt.MqttError, TimeoutError):
                await asyncio.wait_for(conn.client.unsubscribe(self.topics), shell.grace_left() / 4)
        left = await shell.finish()
        for link in links.values():  # one DISCONNECT after the other
            link.close_timeout_s = left / len(links)
