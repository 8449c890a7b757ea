"""Connecting with aiomqtt: TCP_NODELAY, TLS, auth, protocol fallback, a packet size limit.

The daemon, the recorder and the demo feed use `connect`. The application owns
reconnection (aiomqtt's advice): `reconnect_delay` gives the jittered backoff, `Connection`
tells when the link is gone, and `watch_silence` drops a link that went quiet.

`protocol="auto"` tries MQTT 5 and falls back to 3.1.1 when the broker refuses the v5 CONNECT
(amqtt, the embedded broker, only speaks 3.1.1). TLS always verifies the broker's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import socket
from collections.abc import AsyncIterator, Callable
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from monitor.engine.transport import PublishRefused
from monitor.transports.mqtt import _compat
from monitor.transports.mqtt.config import BrokerConfig, Version, attempts, check_tls
from monitor.transports.mqtt.errors import BrokerAuthError, BrokerTLSError, classify
from monitor.transports.mqtt.reader import MessageSink, Reader, RefusalSink

__all__ = [
    "DEFAULT_MAX_PACKET",
    "NODELAY",
    "Connection",
    "connect",
    "reconnect_delay",
    "watch_silence",
]

#: Why: Nagle plus delayed ACKs cost tens of milliseconds per message (PERFORMANCE.md).
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
#: Largest packet (remaining length, bytes) accepted when the caller sets none.
DEFAULT_MAX_PACKET = 1024 * 1024
_log = logging.getLogger("monitor.transports.mqtt")


class Connection:
    """A connected aiomqtt client, the protocol version the broker accepted, its reader.

    Attributes:
        client: The aiomqtt client (subscribe, publish).
        protocol: "5" or "3.1.1".
        close_timeout_s: How long leaving `connect` waits for the broker to acknowledge the
            DISCONNECT before the socket is shut instead (lower it to honour a deadline).
    """

    __slots__ = ("_acks", "_reader", "client", "close_timeout_s", "protocol")

    def __init__(self, client: aiomqtt.Client, protocol: Version, reader: Reader) -> None:
        self.client = client
        self.protocol = protocol
        self._reader = reader
        self.close_timeout_s = 10.0
        # Our publications waiting for their acknowledgement, by packet id: aiomqtt's
        # publish drops the PUBACK's reason code, so `publish` sends through paho and
        # reads the code here (paho calls back on the event loop, where aiomqtt runs it).
        self._acks: dict[int, asyncio.Future[ReasonCode]] = {}
        inner = _compat.paho_client(client)
        # Typed by paho as either callback API; aiomqtt's is VERSION2's (5 arguments).
        chained: Callable[..., object] | None = inner.on_publish

        def on_publish(
            c: paho.Client, userdata: Any, mid: int, reason: ReasonCode, props: Any
        ) -> None:
            waiting = self._acks.pop(mid, None)
            if waiting is not None and not waiting.done():
                waiting.set_result(reason)
            if chained is not None:
                chained(c, userdata, mid, reason, props)

        inner.on_publish = on_publish

    @property
    def lost(self) -> asyncio.Future[None]:
        """Completes once the connection is gone (lost or closed)."""
        return _compat.disconnected(self.client)

    def on_lost(self, callback: Callable[[], None]) -> None:
        """Call `callback` on the event loop once this connection is gone."""
        self.lost.add_done_callback(lambda _future: callback())

    def raise_if_lost(self) -> None:
        """Raise what aiomqtt's message iterator raises once the connection is gone.

        Raises:
            aiomqtt.MqttError: The connection is gone; its cause is chained.
        """
        done = self.lost
        if done.done():
            raise aiomqtt.MqttError("Disconnected during message iteration") from (done.exception())

    def silence_s(self) -> float:
        """Seconds since the last bytes arrived from the broker, on paho's clock.

        Measured by the connection's reader, not paho 2.x's ``_last_bytes_received``: paho
        sets that to now whenever it sends a PINGREQ, so on a dead link the silence it shows
        starts again after one keepalive and a watchdog reading it never fires before
        paho's own timeout (up to 2 x keepalive + 1 s).
        """
        return float(paho.time_func()) - self._reader.last_data

    def drop(self) -> None:
        """Shut the socket down: paho then reports a lost connection at once.

        Why: on a silent or frozen link a graceful DISCONNECT would wait for an answer that
        never comes.
        """
        sock = _compat.paho_client(self.client).socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    async def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False) -> bool:
        """Publish once on this connection; wait for the acknowledgement or the loss.

        Never re-sends: a QoS 1/2 message stays with paho until acknowledged, and a
        timeout and retry on the same connection would send it twice.

        Returns:
            True once acknowledged (QoS 0: once written), False if the connection was
            lost first, or the message could not be sent on it (the caller publishes it
            again on the next one).

        Raises:
            PublishRefused: An MQTT 5 broker acknowledged it with a failure reason code
                (an ACL without write access to the topic answers "Not authorized"). An
                MQTT 3.1.1 broker acknowledges what it drops: it cannot say so.
        """
        if self.lost.done():
            return False
        info = _compat.paho_client(self.client).publish(topic, payload, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS:
            return False  # not sent: the connection is going
        if info.is_published():
            return True  # written at once (QoS 0), before any acknowledgement could come
        ack: asyncio.Future[ReasonCode] = asyncio.get_running_loop().create_future()
        self._acks[info.mid] = ack
        lost = asyncio.shield(self.lost)
        either: set[asyncio.Future[Any]] = {ack, lost}
        try:
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
        finally:
            lost.cancel()
            # Lost, or this task is cancelled: stop waiting for an acknowledgement that
            # will not come; paho keeps the message (QoS 1/2) as before.
            self._acks.pop(info.mid, None)
        if not ack.done():
            return False
        reason = ack.result()
        if reason.is_failure:
            name = reason.getName()
            raise PublishRefused(name.lower().replace(" ", "_"), name)
        return True


def _log_refusal(reason: str) -> None:
    _log.warning("MQTT packet refused: %s", reason)


def _guard_topic(
    handler: Callable[[paho.Client, Any, paho.MQTTMessage], None], on_refused: RefusalSink
) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
    """Wrap an on_message handler: a message whose topic is not UTF-8 is refused, not raised."""

    def on_message(client: paho.Client, userdata: Any, message: paho.MQTTMessage) -> None:
        try:
            message.topic  # noqa: B018 - paho decodes here and raises on invalid UTF-8
        except UnicodeDecodeError:
            on_refused("topic_not_utf8")
            return
        handler(client, userdata, message)

    return on_message


def _to_sink(sink: MessageSink) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
    def on_message(_client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        sink([(message.topic, bytes(message.payload))])  # bytes already: no copy

    return on_message


@contextlib.asynccontextmanager
async def connect(
    cfg: BrokerConfig,
    *,
    clean_session: bool = True,
    session_expiry_s: int | None = None,
    will: aiomqtt.Will | None = None,
    on_message: MessageSink | None = None,
    on_refused: RefusalSink | None = None,
    max_packet_bytes: int = DEFAULT_MAX_PACKET,
) -> AsyncIterator[Connection]:
    """Connect with aiomqtt (TCP_NODELAY, TLS, auth, protocol fallback); disconnect on exit.

    Args:
        cfg: The broker settings.
        clean_session: False asks the broker to keep the session (3.1.1 clean session off,
            MQTT 5 clean start off).
        session_expiry_s: MQTT 5 session expiry interval for a persistent session.
        will: Last will, if any.
        on_message: Takes every incoming message instead of aiomqtt's queue (which then
            stays empty): no `aiomqtt.Message` and no queue operation per message, and
            QoS 0 PUBLISH packets parsed without paho (see `reader`).
        on_refused: Told of every packet the transport refuses (a topic that is not UTF-8,
            a packet over `max_packet_bytes`); a warning in the log when None.
        max_packet_bytes: Largest packet accepted (its remaining length); a larger one drops
            the connection.

    Yields:
        The `Connection`.

    Raises:
        BrokerError: A subclass naming the cause (credentials, TLS, protocol, unreachable).
        ValueError: A persistent session without a client id.
    """
    if not clean_session and not cfg.client_id:
        raise ValueError("a persistent session (clean_session=False) needs a fixed client_id")
    refused = on_refused or _log_refusal
    await asyncio.to_thread(check_tls, cfg)
    last: BaseException | None = None
    for version in attempts(cfg):
        v5 = version == "5"
        props = None
        if v5 and session_expiry_s is not None:
            props = Properties(PacketTypes.CONNECT)  # type: ignore[no-untyped-call]
            props.SessionExpiryInterval = session_expiry_s
        client = aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.secret(),
            identifier=cfg.client_id,
            protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
            clean_session=None if v5 else clean_session,
            clean_start=clean_session if v5 else paho.MQTT_CLEAN_START_FIRST_ONLY,
            properties=props,
            keepalive=cfg.keepalive,
            tls_context=cfg.tls_context(),
            socket_options=NODELAY,
            will=will,
        )
        inner = _compat.paho_client(client)
        reader = Reader(inner, on_message, v5=v5, max_packet=max_packet_bytes, on_refused=refused)
        reader.install()
        handler = _to_sink(on_message) if on_message is not None else inner.on_message
        assert handler is not None  # aiomqtt sets its own
        inner.on_message = _guard_topic(handler, refused)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            last = classify(exc, cfg.url)
            if not isinstance(last, BrokerAuthError | BrokerTLSError):
                continue  # a v5 refusal, or a broker that hangs up on v5: try 3.1.1
            raise last from exc
        conn = Connection(client, version, reader)
        try:
            yield conn
        finally:
            await _close(conn)
        return
    assert last is not None
    raise last


async def _close(conn: Connection) -> None:
    """DISCONNECT within `conn.close_timeout_s`; past it (a frozen broker) shut the socket."""
    conn.client.timeout = max(conn.close_timeout_s, 0.001)
    try:
        await conn.client.__aexit__(None, None, None)
    except aiomqtt.MqttError:
        conn.drop()
        # Let paho read the EOF and close its socket (no leak) before the loop moves on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(conn.lost), 0.5)


def reconnect_delay(attempt: int, low_s: float, cap_s: float) -> float:
    """Jittered exponential backoff: half the capped step plus up to half again at random."""
    cap = min(cap_s, low_s * float(2 ** min(attempt, 30)))
    return cap / 2 + random.uniform(0, cap / 2)


async def watch_silence(
    conn: Connection, keepalive_s: float, on_silent: Callable[[float], None]
) -> None:
    """Drop a connection that has been silent too long (a link that died without FIN).

    paho alone notices a dead link only after up to 2 x keepalive plus its 1 s tick; on a
    healthy link the broker answers a PINGREQ within keepalive + 1 s, so silence past
    max(1.5 x keepalive, keepalive + 2 s) means the link is gone. `on_silent` is told the
    silence (seconds) before the connection is dropped; the consumer then sees it lost.
    """
    limit = max(1.5 * keepalive_s, keepalive_s + 2.0)
    while True:
        await asyncio.sleep(0.25)
        silent = conn.silence_s()
        if silent > limit:
            on_silent(silent)
            conn.drop()
            return
