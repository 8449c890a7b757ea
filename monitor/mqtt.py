"""The one place for MQTT client code: broker settings, connecting, clear errors.

The daemon and the recorder use `connect` (aiomqtt, asyncio). The simulator's hot path uses
`SyncPublisher` (paho-mqtt directly, aiomqtt's own dependency): aiomqtt awaits every publish
until paho has written it, which measured about 7,500 msg/s here against more than 45,000 for
paho's `publish` from a plain loop (see docs/simulator.md).

`protocol="auto"` tries MQTT 5 and falls back to 3.1.1 when the broker refuses the v5 CONNECT
(amqtt, the embedded broker, only speaks 3.1.1). TLS always verifies the broker's certificate.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import threading
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

ProtocolName = Literal["auto", "5", "3.1.1"]
IncomingMessage = aiomqtt.Message
#: Takes incoming messages as (topic, payload) pairs, on the event loop, in arrival order:
#: every QoS 0 PUBLISH of one socket read in one call, other messages one per call.
MessageSink = Callable[[list[tuple[str, bytes]]], None]
#: Why: Nagle plus delayed ACKs cost tens of milliseconds per message (PERFORMANCE.md).
NODELAY = ((socket.IPPROTO_TCP, socket.TCP_NODELAY, 1),)
_DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883}
_URL_HINT = (
    " (in a URL a password's '#', '/', '?' and '@' must be percent-encoded; better, give it "
    "in a password file or the environment: docs/settings.md)"
)
# CONNACK codes: 3.1.1 return codes and MQTT 5 reason codes.
_AUTH_CODES = {4, 5, 134, 135, 140}
_VERSION_CODES = {1, 132}
_BLOCK_BYTES = 65_536
#: Bytes asked of the socket per reader wake-up (about 400 single-sample messages).
_READ_BYTES = 65_536


class BrokerError(Exception):
    """The broker could not be used; the message names the cause and the broker URL."""

    def __init__(self, message: str, *, url: str) -> None:
        super().__init__(f"{message} ({url})")
        self.url = url


class BrokerAuthError(BrokerError):
    """The broker refused the credentials or the client is not authorised."""


class BrokerTLSError(BrokerError):
    """The TLS handshake failed, usually because the certificate did not verify."""


class BrokerProtocolError(BrokerError):
    """The broker refused the MQTT protocol version."""


class BrokerConfig(BaseModel):
    """Where and how to connect to a broker.

    Credentials in the URL (``mqtt://user:pass@host:port``) move into `username` and
    `password` unless those are given; the stored `url` never holds a password.

    Attributes:
        url: ``mqtt://host[:port]`` or ``mqtts://host[:port]`` (TLS); ports default to 1883/8883.
        username: User name; overrides the URL's.
        password: Password; overrides the URL's; never shown in repr or logs.
        ca_file: CA bundle that signs the broker's certificate; the system store when None.
        certfile: Client certificate (mutual TLS).
        keyfile: Client private key (mutual TLS).
        client_id: MQTT client id; a random one when None.
        protocol: "5", "3.1.1" or "auto" (5, falling back to 3.1.1 when refused).
        keepalive: Keepalive interval, seconds.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    url: str = "mqtt://127.0.0.1:1883"
    username: str | None = None
    password: SecretStr | None = None
    ca_file: Path | None = None
    certfile: Path | None = None
    keyfile: Path | None = None
    client_id: str | None = None
    protocol: ProtocolName = "auto"
    keepalive: int = Field(default=60, ge=1, le=65535)

    @model_validator(mode="before")
    @classmethod
    def _split_url(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "url" not in data:
            return data
        # No message below quotes the URL or a part of it: a password with an unencoded
        # '#', '/', '?' or '@' shifts the parts, and the "port" or "host" may be the
        # start of the password (issue 16, item 13).
        url = str(data["url"])
        hint = _URL_HINT if "@" in url else ""
        try:
            parts = urlsplit(url)
            port = parts.port
        except ValueError:
            raise ValueError(f"broker URL is malformed or has a bad port{hint}") from None
        if parts.scheme not in _DEFAULT_PORTS:
            raise ValueError("broker URL scheme must be mqtt or mqtts (mqtt://host:port)")
        if not parts.hostname:
            raise ValueError(f"broker URL has no host (expected mqtt://host:port){hint}")
        port = port or _DEFAULT_PORTS[parts.scheme]
        if parts.path not in ("", "/") or parts.query or parts.fragment:
            raise ValueError(f"broker URL must not have a path, query or fragment{hint}")
        host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
        out = dict(data, url=f"{parts.scheme}://{host}:{port}")
        if parts.username and out.get("username") is None:
            out["username"] = unquote(parts.username)
        if parts.password and out.get("password") is None:
            out["password"] = unquote(parts.password)
        return out

    @property
    def host(self) -> str:
        """The broker's host name or address."""
        return urlsplit(self.url).hostname or ""

    @property
    def port(self) -> int:
        """The broker's TCP port."""
        return urlsplit(self.url).port or _DEFAULT_PORTS[self.scheme]

    @property
    def scheme(self) -> str:
        """``mqtt`` or ``mqtts``."""
        return urlsplit(self.url).scheme

    def tls_context(self) -> ssl.SSLContext | None:
        """Return the verifying TLS context for mqtts (or when a CA file is set), else None."""
        if self.scheme != "mqtts" and self.ca_file is None:
            return None
        ctx = ssl.create_default_context(cafile=str(self.ca_file) if self.ca_file else None)
        if self.certfile is not None:
            ctx.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None)
        return ctx

    def secret(self) -> str | None:
        """Return the password in clear, for the client library only."""
        return self.password.get_secret_value() if self.password else None


def classify(exc: BaseException, cfg: BrokerConfig) -> BrokerError:
    """Turn a client library error into a `BrokerError` subclass that names the cause."""
    if isinstance(exc, BrokerError):
        return exc
    rc = getattr(exc, "rc", None)
    code = rc.value if isinstance(rc, ReasonCode) else rc
    text = str(exc)
    if code in _AUTH_CODES:
        return BrokerAuthError(f"broker refused the login: {text}", url=cfg.url)
    if code in _VERSION_CODES:
        return BrokerProtocolError(f"broker refused the protocol version: {text}", url=cfg.url)
    if isinstance(exc, ssl.SSLError) or "SSL" in text or "certificate" in text:
        return BrokerTLSError(f"TLS failed (is the CA file right?): {text}", url=cfg.url)
    return BrokerError(f"cannot connect to the broker: {text or type(exc).__name__}", url=cfg.url)


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


def check_tls(cfg: BrokerConfig, timeout_s: float = 10.0) -> None:
    """Do one TLS handshake with the broker's settings and close it (no-op without TLS).

    Why: paho leaks its socket when the handshake fails; a handshake of our own fails first,
    closes cleanly and names the cause.

    Raises:
        BrokerTLSError: The certificate did not verify or the handshake failed.
        BrokerError: The broker is unreachable.
    """
    ctx = cfg.tls_context()
    if ctx is None:
        return
    try:
        with (
            socket.create_connection((cfg.host, cfg.port), timeout=timeout_s) as raw,
            ctx.wrap_socket(raw, server_hostname=cfg.host),
        ):
            pass
    except ssl.SSLError as exc:
        raise BrokerTLSError(f"TLS failed (is the CA file right?): {exc}", url=cfg.url) from exc
    except ConnectionResetError as exc:
        raise BrokerTLSError(f"TLS failed (does the port speak TLS?): {exc}", url=cfg.url) from exc
    except OSError as exc:
        raise classify(exc, cfg) from exc


def _attempts(cfg: BrokerConfig) -> list[Literal["5", "3.1.1"]]:
    return ["5", "3.1.1"] if cfg.protocol == "auto" else [cfg.protocol]


@dataclass(frozen=True, slots=True)
class Connection:
    """A connected aiomqtt client and the protocol version the broker accepted."""

    client: aiomqtt.Client
    protocol: Literal["5", "3.1.1"]


@contextlib.asynccontextmanager
async def connect(
    cfg: BrokerConfig,
    *,
    clean_session: bool = True,
    session_expiry_s: int | None = None,
    queue_type: type[asyncio.Queue[aiomqtt.Message]] | None = None,
    max_queued_incoming: int | None = None,
    will: aiomqtt.Will | None = None,
    on_message: MessageSink | None = None,
) -> AsyncIterator[Connection]:
    """Connect with aiomqtt (TCP_NODELAY, TLS, auth, protocol fallback); disconnect on exit.

    Args:
        cfg: The broker settings.
        clean_session: False asks the broker to keep the session (3.1.1 clean session off,
            MQTT 5 clean start off).
        session_expiry_s: MQTT 5 session expiry interval for a persistent session.
        queue_type: Queue class for incoming messages (see `incoming_queue`).
        max_queued_incoming: Bound of that queue (0 or None: unbounded).
        will: Last will, if any.
        on_message: Takes every incoming message instead of aiomqtt's queue (which then
            stays empty): no `aiomqtt.Message` and no queue operation per message, and
            QoS 0 PUBLISH packets parsed without paho (see `_Reader`).

    Yields:
        The `Connection`.

    Raises:
        BrokerError: A subclass naming the cause (credentials, TLS, protocol, unreachable).
        ValueError: A persistent session without a client id.
    """
    if not clean_session and not cfg.client_id:
        raise ValueError("a persistent session (clean_session=False) needs a fixed client_id")
    await asyncio.to_thread(check_tls, cfg)
    last: BaseException | None = None
    for version in _attempts(cfg):
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
            queue_type=queue_type,
            max_queued_incoming_messages=max_queued_incoming,
            will=will,
        )
        _Reader(client._client, on_message).install()
        if on_message is not None:
            client._client.on_message = _paho_callback(on_message)
        try:
            await client.__aenter__()
        except aiomqtt.MqttError as exc:
            last = classify(exc, cfg)
            if not isinstance(last, BrokerAuthError | BrokerTLSError):
                continue  # a v5 refusal, or a broker that hangs up on v5: try 3.1.1
            raise last from exc
        try:
            yield Connection(client, version)
        finally:
            await client.__aexit__(None, None, None)
        return
    assert last is not None
    raise last


#: Attribute of a paho client that holds its `_Reader`.
_READER_ATTR = "_monitor_reader"


class _Reader:
    """paho's reads for one connection: one large ``recv`` per wake-up, QoS 0 PUBLISH fast.

    paho 2.x reads a packet with a 1-byte ``recv`` for its command, one per remaining-length
    byte and one for the rest (three or four system calls per message), then builds an
    `MQTTMessage`, decodes the topic twice, takes three locks and matches the topic against
    its per-topic callbacks; aiomqtt then wakes its reader once per packet. Installed on the
    paho client (its ``_sock_recv`` and ``loop_read``, paho pinned below 3 through aiomqtt),
    this reads up to `_READ_BYTES` once per wake-up of the event loop and serves paho's small
    reads from that block. With a `sink`, the complete QoS 0 PUBLISH packets at the head of
    the block go to it directly (topic and payload, as paho would hand them over); anything
    else (QoS 1/2, MQTT 5 properties, a topic that is not UTF-8, acknowledgements, a packet
    cut at the end of the block, errors and EOF) goes through paho's own code, unchanged.

    Nothing is left in the block when control returns to the event loop, which watches the
    socket, not this buffer: a packet cut at the end of the block moves into paho's own
    partial-packet state and is completed by the next wake-up, as without this class. (TLS:
    aiomqtt calls `loop_read` again while the SSL object holds decrypted bytes.)
    """

    def __init__(self, client: paho.Client, sink: MessageSink | None) -> None:
        self._client = client
        self._sink = sink
        self._v5 = client._protocol == paho.MQTTv5
        self._sock_recv = client._sock_recv
        self._paho_loop_read = client.loop_read
        self._block = b""
        self._pos = 0
        self._read = False
        # What the socket read returned when it brought no data, for paho to handle:
        # the exception it raised, or b"" at EOF. None: no such outcome pending.
        self._outcome: BaseException | bytes | None = None
        #: When a socket read last brought bytes (paho's clock). paho's own
        #: ``_last_bytes_received`` is no measure of silence: paho resets it whenever it
        #: sends a PINGREQ.
        self.last_data = float(paho.time_func())

    def install(self) -> None:
        """Replace the paho client's ``_sock_recv`` and ``loop_read`` (paho pinned below 3)."""
        self._client._sock_recv = self.recv  # type: ignore[method-assign]
        self._client.loop_read = self.loop_read  # type: ignore[method-assign]
        setattr(self._client, _READER_ATTR, self)

    def _fill(self) -> None:
        self._read = True
        try:
            data = self._sock_recv(_READ_BYTES)
        except Exception as exc:  # kept for paho, which handles each kind
            self._outcome = exc
            return
        if data:
            self._block, self._pos = data, 0
            self.last_data = float(paho.time_func())
        else:
            self._outcome = b""

    def recv(self, bufsize: int) -> bytes:
        """paho's ``_sock_recv``: up to `bufsize` bytes from the block, read once per wake-up.

        Raises:
            BlockingIOError: Nothing more this wake-up (the event loop calls back when the
                socket is readable again).
            OSError: The socket read failed (paho reports a lost connection).
        """
        pos, block = self._pos, self._block
        if pos >= len(block):
            if not self._read:
                self._fill()
                pos, block = self._pos, self._block
            if pos >= len(block):
                outcome, self._outcome = self._outcome, None
                if isinstance(outcome, BaseException):
                    raise outcome
                if outcome is None:
                    raise BlockingIOError
                return outcome  # b"": EOF
        end = pos + bufsize
        self._pos = end
        return block[pos:end]

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        """paho's ``loop_read`` for one wake-up: read the socket once, handle every packet."""
        self._read = False
        client, fast = self._client, self._sink is not None
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        if fast and client._in_packet["command"] == 0 and self._pos >= len(self._block):
            self._fill()
        while True:
            if fast and self._pos < len(self._block) and client._in_packet["command"] == 0:
                self._take_publishes()
            if self._pos >= len(self._block) and self._outcome is None and self._read:
                break  # the one read of this wake-up is done and used up
            # One packet (or its cut-off start, or the read's error or EOF) through paho;
            # each call uses up at least a byte, the pending outcome or the read.
            rc = self._paho_loop_read(max_packets)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self._block, self._pos, self._outcome = b"", 0, None
        return rc

    def _take_publishes(self) -> None:
        """Hand the complete QoS 0 PUBLISH packets at the head of the block to the sink."""
        assert self._sink is not None
        block, pos, v5 = self._block, self._pos, self._v5
        end = len(block)
        taken: list[tuple[str, bytes]] = []
        while pos < end and block[pos] & 0xF6 == 0x30:  # PUBLISH, QoS 0 (DUP, RETAIN any)
            start, length, shift = pos + 1, 0, 0
            while start < end and shift <= 21:  # remaining length: 1 to 4 bytes, 7 bits each
                byte = block[start]
                start += 1
                length |= (byte & 0x7F) << shift
                if byte < 0x80:
                    break
                shift += 7
            else:
                break  # cut at the end of the block, or malformed: paho's turn
            stop = start + length
            if stop > end or length < 2:
                break
            topic_end = start + 2 + (block[start] << 8 | block[start + 1])
            body = topic_end + 1 if v5 else topic_end
            if topic_end == start + 2 or body > stop or (v5 and block[topic_end] != 0):
                break  # no topic, or MQTT 5 properties (a topic alias...): paho's turn
            try:
                topic = block[start + 2 : topic_end].decode()
            except UnicodeDecodeError:
                break
            taken.append((topic, block[body:stop]))
            pos = stop
        self._pos = pos
        if taken:
            with self._client._msgtime_mutex:
                self._client._last_bytes_received = paho.time_func()
            self._sink(taken)


def _paho_callback(sink: MessageSink) -> Callable[[paho.Client, Any, paho.MQTTMessage], None]:
    def on_message(_client: paho.Client, _userdata: Any, message: paho.MQTTMessage) -> None:
        sink([(message.topic, bytes(message.payload))])  # bytes already: no copy

    return on_message


def on_lost(client: aiomqtt.Client, callback: Callable[[], None]) -> None:
    """Call `callback` on the event loop once this connection is gone (lost or closed).

    Relies on aiomqtt 2.x's ``_disconnected`` future, as its own message iterator does.
    """
    client._disconnected.add_done_callback(lambda _future: callback())


def raise_if_lost(client: aiomqtt.Client) -> None:
    """Raise what aiomqtt's message iterator raises once the connection is gone.

    Raises:
        aiomqtt.MqttError: The connection is gone; its cause is chained.
    """
    done: asyncio.Future[None] = client._disconnected
    if done.done():
        raise aiomqtt.MqttError("Disconnected during message iteration") from done.exception()


def incoming_queue(client: aiomqtt.Client) -> asyncio.Queue[aiomqtt.Message]:
    """Return the client's incoming queue, to drain it without one task switch per message.

    Relies on aiomqtt 2.x keeping it in ``_queue`` (the dependency is pinned below 3).
    """
    queue: asyncio.Queue[aiomqtt.Message] = client._queue
    return queue


def silence_s(client: aiomqtt.Client) -> float:
    """Seconds since the last bytes arrived from the broker on this client's connection.

    Measured by the connection's `_Reader` (installed by `connect` on aiomqtt 2.x's paho
    ``_client``; both pinned below their next major), on paho's clock. Not paho 2.x's
    ``_last_bytes_received``: paho sets that to now whenever it sends a PINGREQ, so on a
    dead link the silence it shows starts again after one keepalive, and a watchdog
    reading it never fires before paho's own timeout (up to 2 x keepalive + 1 s).
    """
    reader: _Reader = getattr(client._client, _READER_ATTR)
    return float(paho.time_func()) - reader.last_data


def drop_connection(client: aiomqtt.Client) -> None:
    """Shut the client's socket down: paho then reports a lost connection at once.

    Why: on a silent link a graceful DISCONNECT would wait for an answer that never comes.
    """
    sock = client._client.socket()
    if isinstance(sock, socket.socket):
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


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
        self.protocol: Literal["5", "3.1.1"] | None = None
        self._client: paho.Client | None = None
        self._pending: deque[paho.MQTTMessageInfo] = deque()

    def connect(self) -> Literal["5", "3.1.1"]:
        """Connect (falling back from MQTT 5 to 3.1.1 under "auto") and start the network thread.

        Returns:
            The protocol version the broker accepted.

        Raises:
            BrokerError: A subclass naming the cause.
        """
        check_tls(self.cfg, self.timeout_s)
        last: BrokerError | None = None
        for version in _attempts(self.cfg):
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

    def _connect_once(self, version: Literal["5", "3.1.1"]) -> paho.Client:
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
            raise classify(exc, self.cfg) from exc
        sock = client.socket()
        if isinstance(sock, socket.socket):
            sock.setsockopt(*NODELAY[0])
        client.loop_start()
        if not done.wait(self.timeout_s) or not result or result[0].is_failure:
            client.loop_stop()
            client.disconnect()
            if not result or result[0].value in _VERSION_CODES:
                # amqtt hangs up on an MQTT 5 CONNECT instead of answering it.
                why = result[0] if result else "connection closed without CONNACK"
                raise BrokerProtocolError(f"MQTT {version} refused: {why}", url=self.cfg.url)
            raise classify(aiomqtt.MqttCodeError(result[0], "connection refused"), self.cfg)
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
        # paho 2.x (pinned through aiomqtt <3) treats the queued bytes as one QoS 0 PUBLISH.
        rc = self._client._packet_queue(paho.PUBLISH, packets, 0, 0, paho.MQTTMessageInfo(0))
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
