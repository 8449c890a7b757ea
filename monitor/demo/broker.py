"""An embedded MQTT broker (amqtt) for the demo, so a fresh machine needs no Mosquitto.

amqtt speaks MQTT 3.1.1 only; the daemon and the simulator connect with ``protocol=auto``,
which tries MQTT 5 first and falls back to 3.1.1 (`monitor.transports.mqtt`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import socket
from typing import Any

#: Only what the demo needs: anonymous logins. amqtt's defaults also log every packet and
#: publish $SYS topics, which cost CPU on a shared machine and show nothing useful here.
_PLUGINS = {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}}


def port_or_free(host: str, preferred: int) -> int:
    """Return `preferred` if nothing listens on it (and it can be bound), else a free port.

    Args:
        host: The address to bind.
        preferred: The wanted port (0: any free port).
    """
    for port in (preferred, 0) if preferred else (0,):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            try:
                s.bind((host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                continue
            return int(s.getsockname()[1])
    raise OSError(errno.EADDRINUSE, f"no free port on {host}")  # pragma: no cover


class EmbeddedBroker:
    """An amqtt broker listening on ``host:port`` (TCP, anonymous) on the running event loop.

    Args:
        host: Bind address (loopback by default: the demo is not a network service).
        port: TCP port.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 1883) -> None:
        self.host = host
        self.port = port
        self._broker: Any = None

    @property
    def url(self) -> str:
        """The broker URL clients connect to."""
        return f"mqtt://{self.host}:{self.port}"

    async def start(self) -> None:
        """Start listening (call from inside the event loop that will serve it)."""
        from amqtt.broker import Broker  # imported here: only the demo pays for it

        # amqtt logs each connection at INFO and some client hang-ups as warnings or errors
        # (with tracebacks); the demo's summary is the interface, so keep it quiet.
        for name in ("amqtt", "transitions"):
            logging.getLogger(name).setLevel(logging.CRITICAL)
        config = {
            "listeners": {"default": {"type": "tcp", "bind": f"{self.host}:{self.port}"}},
            "plugins": _PLUGINS,
        }
        self._broker = Broker(config)
        await self._broker.start()

    async def stop(self) -> None:
        """Shut the broker down (clients are disconnected)."""
        if self._broker is None:
            return
        broker, self._broker = self._broker, None
        with contextlib.suppress(Exception):  # amqtt raises on a broker that never started
            await broker.shutdown()
