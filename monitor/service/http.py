"""The HTTP endpoint: /metrics (Prometheus), /healthz (alive: making progress) and /readyz
(serving).

Served by waitress in its own thread, so a busy event loop never delays a scrape or a health
check. waitress holds every connection in one select loop (an idle client costs a socket, not
a thread) and runs requests on a fixed pool of worker threads. The daemon sets a listen
backlog that absorbs a burst of scrapes, closes connections idle past `idle_timeout_s` (an
unfinished request line included), accepts at most `max_connections` at once (the others wait
in the backlog) and answers GET and HEAD only.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, make_wsgi_app
from waitress.server import create_server

from monitor.errors import MonitorError

StartResponse = Callable[..., Any]

#: Pending connections the kernel holds for us: 1,000 scrapes at once all get in.
BACKLOG = 1024
#: Request workers; rendering the metrics is the only real work and it takes milliseconds.
WORKERS = 4
_METHODS = ("GET", "HEAD")
# A GET or HEAD needs no body and few headers; anything larger is refused by waitress.
_MAX_HEADER_BYTES = 16 * 1024
_MAX_BODY_BYTES = 1024


class HttpBindError(MonitorError):
    """The endpoint cannot listen on the configured address.

    Attributes:
        host: The configured `metrics.host`.
        port: The configured `metrics.port`.
        reason: Why (the operating system's words).
    """

    def __init__(self, host: str, port: int, reason: str) -> None:
        super().__init__(
            f"cannot serve /metrics on {host}:{port}: {reason}; choose another address with "
            "--metrics-host/--metrics-port (MONITOR_METRICS__HOST, MONITOR_METRICS__PORT)"
        )
        self.host = host
        self.port = port
        self.reason = reason


def make_app(
    registry: CollectorRegistry,
    is_ready: Callable[[], bool],
    is_alive: Callable[[], bool] = lambda: True,
) -> Callable[..., Any]:
    """Build the WSGI app serving the three endpoints (GET and HEAD only)."""
    metrics_app = make_wsgi_app(registry)

    def probe(passed: bool, yes: bytes, no: bytes, start_response: StartResponse) -> list[bytes]:
        start_response(
            "200 OK" if passed else "503 Service Unavailable", [("Content-Type", "text/plain")]
        )
        return [yes if passed else no]

    def get(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            return probe(is_alive(), b"ok\n", b"stuck\n", start_response)
        if path == "/readyz":
            return probe(is_ready(), b"ready\n", b"not ready\n", start_response)
        if path == "/metrics":
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        method = environ.get("REQUEST_METHOD")
        if method == "HEAD":
            return _head(get, environ, start_response)
        if method != "GET":
            start_response(
                "405 Method Not Allowed",
                [("Content-Type", "text/plain"), ("Allow", ", ".join(_METHODS))],
            )
            return [b"method not allowed\n"]
        return get(environ, start_response)

    return app


def _head(
    get: Callable[..., Iterable[bytes]], environ: dict[str, Any], start_response: StartResponse
) -> Iterable[bytes]:
    """Answer HEAD with the GET's status and headers and no body (waitress sends what it gets;
    prometheus-client's app refuses HEAD)."""
    captured: list[Any] = []
    body = b"".join(get(dict(environ, REQUEST_METHOD="GET"), lambda *a: captured.extend(a)))
    status, headers = captured[0], list(captured[1])
    if not any(name.lower() == "content-length" for name, _ in headers):
        headers.append(("Content-Length", str(len(body))))
    start_response(status, headers)
    return []


def bind(host: str, port: int) -> socket.socket:
    """Return a socket bound to (host, port), not yet listening.

    Raises:
        HttpBindError: The host does not resolve, is not an address of this machine, or the
            port is in use or not allowed.
    """
    try:
        found = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except (socket.gaierror, UnicodeError) as exc:
        raise HttpBindError(host, port, f"unknown host ({exc})") from None
    # IPv4 first where a name has both, as the old server (IPv4 only) bound: "localhost" must
    # stay 127.0.0.1, where the shipped Prometheus configuration scrapes it.
    family, kind, proto, _, address = next(
        (info for info in found if info[0] == socket.AF_INET), found[0]
    )
    sock = socket.socket(family, kind, proto)
    try:
        # A restart must not wait for the old connections' TIME_WAIT.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise HttpBindError(host, port, exc.strerror or str(exc)) from None
    return sock


class HttpServer:
    """The endpoint's server thread.

    Args:
        host: Bind address (127.0.0.1 unless configured otherwise).
        port: Port (0 picks a free one; see `port` after `start`).
        registry: The daemon's metrics registry.
        is_ready: Readiness probe.
        is_alive: Liveness probe (/healthz); answered from this thread, so it can tell a
            stuck event loop.
        idle_timeout_s: Close a connection without a complete request for this long.
        max_connections: Connections held at once; more wait in the listen backlog.
    """

    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        is_ready: Callable[[], bool],
        idle_timeout_s: int = 10,
        max_connections: int = 512,
        is_alive: Callable[[], bool] = lambda: True,
    ) -> None:
        self.host = host
        self.port = port
        self.idle_timeout_s = idle_timeout_s
        self.max_connections = max_connections
        self._app = make_app(registry, is_ready, is_alive)
        self._server: Any = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread.

        Raises:
            HttpBindError: The address cannot be used.
        """
        # waitress warns "Task queue depth is N" for every request that waits for a worker:
        # normal during a burst of scrapes, and not a line per request in the daemon's log.
        logging.getLogger("waitress.queue").setLevel(logging.ERROR)
        # Any: one socket gives a TcpWSGIServer, and types-waitress misdescribes the
        # attributes used here (`trigger` as int, `active_channels` as one channel).
        server: Any = create_server(
            self._app,
            sockets=[bind(self.host, self.port)],
            threads=WORKERS,
            backlog=BACKLOG,
            connection_limit=self.max_connections,
            channel_timeout=self.idle_timeout_s,
            # How often idle connections are looked for: a fraction of the timeout.
            cleanup_interval=max(1, self.idle_timeout_s // 3),
            # poll(): no FD_SETSIZE limit on the connections held.
            asyncore_use_poll=True,
            max_request_header_size=_MAX_HEADER_BYTES,
            max_request_body_size=_MAX_BODY_BYTES,
            ident="vitals-monitor",
        )
        self._server = server
        self.port = int(server.effective_port)
        self._thread = threading.Thread(target=server.run, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving: close the socket and every connection, then stop the workers."""
        server, self._server = self._server, None
        if server is None:
            return

        def close_all() -> None:
            # Runs on the server's own loop thread (the trigger wakes it): closing sockets
            # from another thread would race its poll().
            for channel in list(server.active_channels.values()):
                with contextlib.suppress(OSError):
                    channel.close()
            server.close()  # the listening socket and the trigger: the loop's map empties

        server.trigger.pull_trigger(close_all)
        if self._thread is not None:
            self._thread.join(timeout=5.0)
        server.task_dispatcher.shutdown(timeout=5)
