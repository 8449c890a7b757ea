"""A loopback TCP proxy that can stop forwarding without closing (a silent network loss).

`blackhole()` makes every open connection go quiet in both directions while its sockets stay
open: no FIN, no RST, exactly what a pulled cable or a dead NAT entry looks like to MQTT.
Only keepalive can detect it. Connections opened afterwards are forwarded normally.
"""

from __future__ import annotations

import contextlib
import select
import socket
import threading
from dataclasses import dataclass, field

from tests.support.mosquitto import free_port


@dataclass
class TcpProxy:
    """Forward 127.0.0.1:port to 127.0.0.1:target_port, one thread per connection.

    Attributes:
        target_port: The upstream port (the broker).
        port: The port clients connect to.
        connections: Connections accepted so far.
    """

    target_port: int
    port: int = field(default_factory=free_port)
    connections: int = 0
    _silences: list[threading.Event] = field(default_factory=list)
    _closed: threading.Event = field(default_factory=threading.Event)
    _server: socket.socket | None = None
    _sockets: list[socket.socket] = field(default_factory=list)

    @property
    def url(self) -> str:
        """``mqtt://127.0.0.1:port`` of the proxy."""
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Listen and accept in a background thread."""
        server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(16)
        server.settimeout(0.1)
        self._server = server
        threading.Thread(target=self._accept, daemon=True, name="proxy-accept").start()

    def blackhole(self) -> None:
        """Stop forwarding on every open connection for good, keeping the sockets open."""
        for silent in self._silences:
            silent.set()

    def close(self) -> None:
        """Stop accepting and close every socket."""
        self._closed.set()
        for sock in [self._server, *self._sockets]:
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.close()

    def _accept(self) -> None:
        assert self._server is not None
        while not self._closed.is_set():
            try:
                client, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections += 1
            silent = threading.Event()
            self._silences.append(silent)
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            threading.Thread(
                target=self._pump, args=(client, upstream, silent), daemon=True
            ).start()

    def _pump(self, a: socket.socket, b: socket.socket, silent: threading.Event) -> None:
        peers = {a: b, b: a}
        while not self._closed.is_set():
            if silent.is_set():
                self._closed.wait(0.05)
                continue
            try:
                readable, _, _ = select.select(list(peers), [], [], 0.05)
                for sock in readable:
                    data = sock.recv(65536)
                    if not data:
                        raise ConnectionResetError
                    peers[sock].sendall(data)
            except OSError:
                for sock in peers:
                    with contextlib.suppress(OSError):
                        sock.close()
                return
