"""The daemon's fast receive path: one socket read per wake-up, QoS 0 PUBLISH without paho.

paho 2.x reads a packet with a 1-byte ``recv`` for its command, one per remaining-length
byte and one for the rest (three or four system calls per message), then builds an
`MQTTMessage`, decodes the topic twice, takes three locks and matches the topic against
its per-topic callbacks; aiomqtt then wakes its reader once per packet. `Reader`, hooked
into the paho client (through `_compat`), reads up to `READ_BYTES` once per wake-up of the
event loop and serves paho's small reads from that block. With a sink, the complete QoS 0
PUBLISH packets at the head of the block go to it directly (topic and payload, as paho
would hand them over); anything else (QoS 1/2, MQTT 5 properties, acknowledgements, a
packet cut at the end of the block, errors and EOF) goes through paho's own code.

Two refusals protect the daemon from a hostile or broken broker:

* a PUBLISH whose topic is not UTF-8 is skipped and reported (``topic_not_utf8``); paho's
  own path would raise from every later read (a log storm, later messages lost);
* a packet longer than the limit (``packet_too_large``) drops the connection as soon as
  its header is read, so memory never grows with the length a broker declares.

Nothing is left in the block when control returns to the event loop, which watches the
socket, not this buffer: a packet cut at the end of the block moves into paho's own
partial-packet state and is completed by the next wake-up. (TLS: aiomqtt calls
`loop_read` again while the SSL object holds decrypted bytes.)
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Callable

import paho.mqtt.client as paho
from paho.mqtt.enums import MQTTErrorCode

from monitor.transports.mqtt import _compat

__all__ = ["READ_BYTES", "MessageSink", "Reader", "RefusalSink"]

#: Takes incoming messages as (topic, payload) pairs, on the event loop, in arrival order:
#: every QoS 0 PUBLISH of one socket read in one call, other messages one per call.
MessageSink = Callable[[list[tuple[str, bytes]]], None]
#: Told of each packet refused by the transport, with the reason
#: (``topic_not_utf8``, ``packet_too_large``).
RefusalSink = Callable[[str], None]
#: Bytes asked of the socket per reader wake-up (about 400 single-sample messages).
READ_BYTES = 65_536


class Reader:
    """paho's reads for one connection (see the module docstring).

    Args:
        client: The paho client of the connection.
        sink: Takes the QoS 0 PUBLISH packets parsed here; None: all go through paho.
        v5: The connection speaks MQTT 5 (a property length byte after the topic).
        max_packet: Largest remaining length accepted for any packet, bytes.
        on_refused: Told of every refused packet.
    """

    def __init__(
        self,
        client: paho.Client,
        sink: MessageSink | None,
        *,
        v5: bool,
        max_packet: int,
        on_refused: RefusalSink,
    ) -> None:
        self._client = client
        self._sink = sink
        self._v5 = v5
        self._max = max_packet
        self._on_refused = on_refused
        self._sock_recv: _compat.RecvHook = _unhooked
        self._paho_loop_read: _compat.LoopReadHook = client.loop_read
        self._block = b""
        self._pos = 0
        self._read = False
        # What the socket read returned when it brought no data, for paho to handle:
        # the exception it raised, or b"" at EOF. None: no such outcome pending.
        self._outcome: BaseException | bytes | None = None
        self._dropped = False
        #: When a socket read last brought bytes (paho's clock). paho's own
        #: ``_last_bytes_received`` is no measure of silence: paho resets it whenever it
        #: sends a PINGREQ.
        self.last_data = float(paho.time_func())

    def install(self) -> None:
        """Take over the paho client's socket reads (through `_compat.hook_reads`)."""
        self._sock_recv, self._paho_loop_read = _compat.hook_reads(
            self._client, self.recv, self.loop_read
        )

    def _fill(self) -> None:
        self._read = True
        try:
            data = self._sock_recv(READ_BYTES)
        except Exception as exc:  # kept for paho, which handles each kind
            self._outcome = exc
            return
        if data:
            self._block, self._pos = data, 0
            self.last_data = float(paho.time_func())
        else:
            self._outcome = b""

    def recv(self, bufsize: int) -> bytes:
        """paho's socket read: up to `bufsize` bytes from the block, read once per wake-up.

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
        if fast and _compat.between_packets(client) and self._pos >= len(self._block):
            self._fill()
        while True:
            if fast and self._pos < len(self._block) and _compat.between_packets(client):
                self._take_publishes()
            if self._pos >= len(self._block) and self._outcome is None and self._read:
                break  # the one read of this wake-up is done and used up
            # One packet (or its cut-off start, or the read's error or EOF) through paho;
            # each call uses up at least a byte, the pending outcome or the read.
            rc = self._paho_loop_read(max_packets)
            length = _compat.incoming_length(client)
            if length is not None and length > self._max:
                rc = self._drop_oversize()
                break
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break
        self._block, self._pos, self._outcome = b"", 0, None
        return rc

    def _drop_oversize(self) -> MQTTErrorCode:
        """Refuse a packet over the limit: shut the socket and let paho see the EOF now."""
        if not self._dropped:
            self._dropped = True
            self._on_refused("packet_too_large")
        sock = self._client.socket()
        if isinstance(sock, socket.socket):
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        # What is left of the block is the oversize packet's body: never buffered further.
        self._block, self._pos, self._outcome, self._read = b"", 0, b"", True
        return self._paho_loop_read(1)  # reads the EOF: paho reports the connection lost

    def _take_publishes(self) -> None:
        """Take the complete QoS 0 PUBLISH packets at the head of the block.

        Valid ones go to the sink; one whose topic is not UTF-8 is skipped and refused.
        """
        block, pos, v5, limit = self._block, self._pos, self._v5, self._max
        end = len(block)
        taken: list[tuple[str, bytes]] = []
        refused = 0
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
            if stop > end or length < 2 or length > limit:
                break  # cut, malformed or over the limit: paho's turn (and the size check)
            topic_end = start + 2 + (block[start] << 8 | block[start + 1])
            body = topic_end + 1 if v5 else topic_end
            if topic_end == start + 2 or body > stop or (v5 and block[topic_end] != 0):
                break  # no topic, or MQTT 5 properties (a topic alias...): paho's turn
            try:
                topic = block[start + 2 : topic_end].decode()
            except UnicodeDecodeError:
                refused += 1  # a whole packet, safely skipped: the stream stays in step
            else:
                taken.append((topic, block[body:stop]))
            pos = stop
        if pos == self._pos:
            return
        self._pos = pos
        _compat.mark_received(self._client)
        for _ in range(refused):
            self._on_refused("topic_not_utf8")
        if taken:
            assert self._sink is not None  # only called with a sink
            self._sink(taken)


def _unhooked(_bufsize: int) -> bytes:
    raise RuntimeError("Reader.install() first")
