"""`SyncPublisher`: a blocking, fast publisher on paho-mqtt for producers such as the simulator.

aiomqtt awaits every publish until paho has written it, which measured about 7,500 msg/s
here against more than 45,000 for paho's `publish` from a plain loop (see docs/simulator.md),
so the simulator's hot path uses paho (aiomqtt's own dependency) directly.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections import deque
from collections.abc import Sequence
from typing import Any

import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from monitor.transports.mqtt import _compat
from monitor.transports.mqtt.client import NODELAY
from monitor.transports.mqtt.config import BrokerConfig, Version, attempts, check_tls
from monitor.transports.mqtt.errors import (
    VERSION_CODES,
    BrokerAuthError,
    BrokerError,
    BrokerProtocolError,
    BrokerTLSError,
    classify,
)

__all__ = ["SyncPublisher"]

_BLOCK_BYTES = 65_536


class _Refused(Exception):
    """A refusing CONNACK, for `classify` (which reads `rc`)."""

    def __init__(self, rc: ReasonCode) -> None:
        super().__init__(f"connection refused: {rc}")
        self.rc = rc


def _publish_header(topic_len: int, payload_len: int, v5: bool) -> bytes:
    """Return a QoS 0 PUBLISH fixed header plus the topic length field."""
    remaining = 2 + topic_len + (1 if v5 else 0) + payload_len
    head = bytearray(b"\x30")
    while True:
        byte, remaining = remaining % 128, remaining // 128
        head.append(byte | 0x80 if remaining else byte)
        if not remaining:
            break
    head += topic_len.to_bytes(2, "big")
    return bytes(head)


class SyncPublisher:
    """A blocking, fast publisher on paho-mqtt for producers such as the simulator.

    paho's network thread (``loop_start``) handles keepalive and acknowledgements; `publish`
    only queues. At QoS 1 and 2 at most `window` messages are left unacknowledged: `publish`
    waits for the oldest one beyond that, so a fast producer cannot grow memory without bound.

    Args:
        cfg: The broker settings.
        window: Largest number of unacknowledged QoS 1/2 messages. paho's acknowledgement
            handling slows down with many in flight: 10,000 gave about 1,000 msg/s here,
            100-1,000 gave 5,600-8,200 msg/s.
        timeout_s: How long to wait for CONNACK and for acknowledgements.
    """

    def __init__(self, cfg: BrokerConfig, *, window: int = 200, timeout_s: float = 10.0):
        self.cfg = cfg
        self.window = window
        self.timeout_s = timeout_s
        self.protocol: Version | None = None
        self._client: paho.Client | None = None
        self._pending: deque[paho.MQTTMessageInfo] = deque()

    def connect(self) -> Version:
        """Connect (falling back from MQTT 5 to 3.1.1 under "auto") and start the network thread.

        Returns:
            The protocol version the broker accepted.

        Raises:
            BrokerError: A subclass naming the cause.
        """
        check_tls(self.cfg, self.timeout_s)
        last: BrokerError | None = None
        for version in attempts(self.cfg):
            try:
                self._client = self._connect_once(version)
            except BrokerError as exc:
                last = exc
                if isinstance(exc, BrokerAuthError | BrokerTLSError):
                    raise
                continue
            self.protocol = version
            return version
        assert last is not None
        raise last

    def _connect_once(self, version: Version) -> paho.Client:
        v5 = version == "5"
        client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.cfg.client_id or "",
            protocol=paho.MQTTv5 if v5 else paho.MQTTv311,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(self.window)
        if self.cfg.username is not None:
            client.username_pw_set(self.cfg.username, self.cfg.secret())
        ctx = self.cfg.tls_context()
        if ctx is not None:
            client.tls_set_context(ctx)
        done = threading.Event()
        result: list[Any] = []

        def on_connect(_c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
            result.append(rc)
            done.set()

        def on_disconnect(_c: paho.Client, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
            result.append(rc)
            done.set()

        client.on_connect = on_connect
        client.on_disconnect = on_disconnect
        try:
            client.connect(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        except (OSError, ValueError) as exc:
            raise classify(exc, self.cfg.url) from exc
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(*NODELAY[0])
        client.loop_start()
        if not done.wait(self.timeout_s) or not result or result[0].is_failure:
            client.loop_stop()
            client.disconnect()
            if not result or result[0].value in VERSION_CODES:
                # amqtt hangs up on an MQTT 5 CONNECT instead of answering it.
                why = result[0] if result else "connection closed without CONNACK"
                raise BrokerProtocolError(f"MQTT {version} refused: {why}", url=self.cfg.url)
            raise classify(_Refused(result[0]), self.cfg.url)
        return client

    def publish(self, topic: str, payload: bytes, qos: int = 0, retain: bool = False) -> None:
        """Queue one message; at QoS 1/2 wait while `window` messages are unacknowledged.

        Raises:
            BrokerError: The connection is lost.
        """
        assert self._client is not None, "connect() first"
        info = self._client.publish(topic, payload, qos, retain)
        if info.rc != paho.MQTT_ERR_SUCCESS and info.rc != paho.MQTT_ERR_QUEUE_SIZE:
            raise BrokerError(f"publish failed: {paho.error_string(info.rc)}", url=self.cfg.url)
        if qos:
            self._pending.append(info)
            while len(self._pending) > self.window:
                self._pending.popleft().wait_for_publish(self.timeout_s)

    def publish_many(self, messages: Sequence[tuple[str, bytes]], qos: int = 0) -> None:
        """Publish many messages; at QoS 0 they go out in few large writes.

        Why: one ``send`` per message (paho's `publish`) costs a syscall and a TCP segment per
        message on both ends, which capped the simulator near 15,000 msg/s here. At QoS 0 the
        PUBLISH packets are encoded here and queued on paho's connection in blocks of about
        64 KiB; paho writes them in order with everything else. QoS 1/2 use `publish`.

        Raises:
            BrokerError: The connection is lost.
            ValueError: A topic with wildcards.
        """
        if qos:
            for topic, payload in messages:
                self.publish(topic, payload, qos)
            return
        assert self._client is not None, "connect() first"
        v5 = self.protocol == "5"
        blob = bytearray()
        for topic, payload in messages:
            name = topic.encode()
            if b"+" in name or b"#" in name or not 0 < len(name) < 65536:
                raise ValueError(f"invalid topic for publishing: {topic!r}")
            blob += _publish_header(len(name), len(payload), v5)
            blob += name
            if v5:
                blob.append(0)  # no PUBLISH properties
            blob += payload
            if len(blob) >= _BLOCK_BYTES:
                self._queue_raw(bytes(blob))
                blob.clear()
        if blob:
            self._queue_raw(bytes(blob))

    def _queue_raw(self, packets: bytes) -> None:
        assert self._client is not None
        rc = _compat.queue_raw_publish(self._client, packets)
        if rc not in (paho.MQTT_ERR_SUCCESS, paho.MQTT_ERR_AGAIN):
            raise BrokerError(f"publish failed: {paho.error_string(rc)}", url=self.cfg.url)
        if not self._client.is_connected():
            raise BrokerError("connection to the broker lost", url=self.cfg.url)

    def flush(self) -> None:
        """Wait until every QoS 1/2 message is acknowledged (QoS 0 ones are written by `close`)."""
        while self._pending:
            self._pending.popleft().wait_for_publish(self.timeout_s)

    def close(self) -> None:
        """Flush, disconnect and stop the network thread.

        DISCONNECT is queued behind every message already queued, so QoS 0 messages are
        written before the connection closes.
        """
        if self._client is None:
            return
        client, self._client = self._client, None
        with contextlib.suppress(RuntimeError, ValueError):
            while self._pending:
                self._pending.popleft().wait_for_publish(self.timeout_s)
        client.disconnect()
        client.loop_stop()
