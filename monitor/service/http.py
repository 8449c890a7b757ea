"""The HTTP endpoint: /metrics (Prometheus), /healthz (alive) and /readyz (serving).

It runs in its own thread (wsgiref, as prometheus-client's own server does), so a busy
event loop never delays a scrape or a health check.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

StartResponse = Callable[..., Any]


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        """Silence per-request access lines (the daemon logs JSON on stdout)."""


def make_app(registry: CollectorRegistry, is_ready: Callable[[], bool]) -> Callable[..., Any]:
    """Build the WSGI app serving the three endpoints."""
    metrics_app = make_wsgi_app(registry)

    def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if path == "/healthz":
            start_response("200 OK", [("Content-Type", "text/plain")])
            return [b"ok\n"]
        if path == "/readyz":
            ready = is_ready()
            start_response(
                "200 OK" if ready else "503 Service Unavailable",
                [("Content-Type", "text/plain")],
            )
            return [b"ready\n" if ready else b"not ready\n"]
        if path == "/metrics":
            result: Iterable[bytes] = metrics_app(environ, start_response)
            return result
        start_response("404 Not Found", [("Content-Type", "text/plain")])
        return [b"not found\n"]

    return app


class HttpServer:
    """The endpoint's server thread.

    Args:
        host: Bind address (127.0.0.1 unless configured otherwise).
        port: Port (0 picks a free one; see `port` after `start`).
        registry: The daemon's metrics registry.
        is_ready: Readiness probe.
    """

    def __init__(
        self, host: str, port: int, registry: CollectorRegistry, is_ready: Callable[[], bool]
    ) -> None:
        self.host = host
        self.port = port
        self._app = make_app(registry, is_ready)
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Bind and serve in a daemon thread."""
        server = make_server(
            self.host, self.port, self._app, server_class=_Server, handler_class=_QuietHandler
        )
        self._server = server
        self.port = server.server_address[1]
        self._thread = threading.Thread(target=server.serve_forever, name="http", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop serving and close the socket."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
