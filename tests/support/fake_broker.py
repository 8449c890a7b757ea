"""A scripted fake MQTT 3.1.1 broker on loopback: raw bytes, for hostile-broker tests."""

from __future__ import annotations

import socket
import threading
from collections.abc import Callable

CONNACK = b"\x20\x02\x00\x00"


def remaining(n: int) -> bytes:
    """MQTT variable-length encoding of a remaining length."""
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | 0x80 if n else byte)
        if not n:
            return bytes(out)


def publish(topic: bytes, payload: bytes, qos: int = 0, mid: int = 1) -> bytes:
    """A PUBLISH packet with a raw (possibly invalid) topic."""
    body = len(topic).to_bytes(2, "big") + topic
    if qos:
        body += mid.to_bytes(2, "big")
    body += payload
    return bytes([0x30 | qos << 1]) + remaining(len(body)) + body


def read_packet(conn: socket.socket) -> bytes:
    """Read one MQTT packet from the client: its first byte and its body."""
    head = conn.recv(1)
    length, shift = 0, 0
    while True:
        byte = conn.recv(1)[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            break
    body = b""
    while len(body) < length:
        body += conn.recv(length - len(body))
    return head + body


class FakeBroker:
    """Accepts one client, answers CONNECT and SUBSCRIBE, then runs `script(conn)`."""

    def __init__(self, script: Callable[[socket.socket], None]) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.script = script
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        conn, _ = self.server.accept()
        with conn:
            try:
                assert read_packet(conn)[0] == 0x10  # CONNECT
                conn.sendall(CONNACK)
                sub = read_packet(conn)
                assert sub[0] == 0x82  # SUBSCRIBE
                conn.sendall(b"\x90\x03" + sub[1:3] + b"\x01")  # SUBACK (mid), granted QoS 1
                self.script(conn)
            except OSError as exc:
                self.error = exc

    def close(self) -> None:
        self.thread.join(10)
        self.server.close()
