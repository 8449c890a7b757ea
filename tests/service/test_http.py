"""The HTTP endpoint under bursts, idle clients, malformed requests and other methods.

Each test starts the real server on a free loopback port (no mocks).
"""

from __future__ import annotations

import asyncio
import resource
import socket
import threading
import time
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, Counter

from monitor.service.http import HttpBindError, HttpServer, bind

# Generous: a loaded 2-core CI machine; the old server's failures were 20 s timeouts.
_CLIENT_TIMEOUT_S = 20.0
_CLOSE = b"Connection: close\r\n\r\n"


def _registry() -> CollectorRegistry:
    registry = CollectorRegistry()
    Counter("monitor_test_events", "A counter to scrape.", registry=registry).inc(3)
    return registry


@pytest.fixture
def server() -> Iterator[HttpServer]:
    """An endpoint whose idle connections are closed after 1 s."""
    http = HttpServer("127.0.0.1", 0, _registry(), lambda: True, idle_timeout_s=1)
    http.start()
    yield http
    http.stop()


def _exchange(port: int, request: bytes, timeout_s: float = _CLIENT_TIMEOUT_S) -> bytes:
    """Send `request`, read until the server closes the connection, return what came back."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout_s) as conn:
        conn.sendall(request)
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
        return data


@pytest.fixture
def many_files() -> Iterator[None]:
    """Room for 1,000 client and 512 server sockets in this process (soft limit 1,024 on
    many machines), restored after the test."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 4096 if hard == resource.RLIM_INFINITY else min(hard, 4096)
    if wanted < 2600:
        pytest.skip(f"the file descriptor limit {hard} is too low for the burst")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


@pytest.fixture
def default_server() -> Iterator[HttpServer]:
    """An endpoint with the daemon's defaults (a 1 s idle timeout could close a connection
    accepted but not yet read on a loaded machine)."""
    http = HttpServer("127.0.0.1", 0, _registry(), lambda: True)
    http.start()
    yield http
    http.stop()


@pytest.mark.usefixtures("many_files")
def test_a_burst_of_1000_concurrent_scrapes_all_succeed(default_server: HttpServer) -> None:
    """1,000 scrapes opened at once all get their metrics (the old backlog of 5 lost ~4 %)."""
    server = default_server

    async def scrape() -> bytes:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", server.port), _CLIENT_TIMEOUT_S
        )
        writer.write(b"GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        try:
            return await asyncio.wait_for(reader.read(), _CLIENT_TIMEOUT_S)
        finally:
            writer.close()

    async def burst() -> list[bytes | BaseException]:
        return await asyncio.gather(*(scrape() for _ in range(1000)), return_exceptions=True)

    results = asyncio.run(burst())
    failed = [r for r in results if not isinstance(r, bytes) or not r.startswith(b"HTTP/1.1 200")]
    assert failed == []
    assert all(b"monitor_test_events_total 3.0" in r for r in results if isinstance(r, bytes))


def test_idle_connections_hold_no_thread_and_are_closed(server: HttpServer) -> None:
    """200 idle clients add no thread, and the server closes each after its idle timeout."""
    before = threading.active_count()
    conns = [socket.create_connection(("127.0.0.1", server.port), timeout=10) for _ in range(200)]
    try:
        time.sleep(0.5)  # the old server had started a thread per connection by now
        assert threading.active_count() <= before
        # Closed by the server (recv returns b""), not left open forever.
        assert all(conn.recv(1) == b"" for conn in conns)
    finally:
        for conn in conns:
            conn.close()


def test_an_unfinished_request_line_is_closed_not_held(server: HttpServer) -> None:
    """An HTTP/0.9-style request line with no end of headers does not hold its connection."""
    assert _exchange(server.port, b"GET /metrics\r\n", timeout_s=10) == b""


def test_a_malformed_request_gets_400_at_once(server: HttpServer) -> None:
    """Bytes that are not HTTP (a TLS hello to a plain port) get a 400 and a closed socket."""
    reply = _exchange(server.port, b"\x16\x03\x01\x02\x00garbage\r\n\r\n")
    assert reply.startswith(b"HTTP/1.0 400 Bad Request")


@pytest.mark.parametrize("method", ["DELETE", "POST", "PUT", "OPTIONS"])
def test_only_get_and_head_are_answered(server: HttpServer, method: str) -> None:
    """Any other method gets 405 with an Allow header, on every path."""
    for path in ("/readyz", "/metrics", "/healthz"):
        reply = _exchange(
            server.port,
            f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode(),
        )
        head = reply.split(b"\r\n\r\n")[0]
        assert head.startswith(b"HTTP/1.1 405 Method Not Allowed")
        assert b"Allow: GET, HEAD" in head


def test_get_and_head_keep_the_endpoints_and_the_metrics_content_type(server: HttpServer) -> None:
    """/healthz, /readyz and /metrics answer as before; HEAD sends the headers only."""
    get = b"GET %s HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    assert _exchange(server.port, get % b"/healthz").endswith(b"\r\n\r\nok\n")
    assert _exchange(server.port, get % b"/readyz").endswith(b"\r\n\r\nready\n")
    assert _exchange(server.port, get % b"/nope").startswith(b"HTTP/1.1 404")
    metrics = _exchange(server.port, get % b"/metrics")
    assert b"Content-Type: text/plain; version=0.0.4; charset=utf-8" in metrics
    head = _exchange(server.port, b"HEAD /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert head.endswith(b"\r\n\r\n")  # no body


def test_readyz_is_503_when_not_ready() -> None:
    """/readyz follows the probe."""
    http = HttpServer("127.0.0.1", 0, _registry(), lambda: False)
    http.start()
    try:
        reply = _exchange(http.port, b"GET /readyz HTTP/1.1\r\nHost: t\r\n" + _CLOSE)
    finally:
        http.stop()
    assert reply.startswith(b"HTTP/1.1 503")


def test_healthz_follows_the_liveness_probe() -> None:
    """/healthz answers 503 while the liveness probe fails (a stuck daemon), 200 after;
    /readyz follows its own probe."""
    alive = [False]
    http = HttpServer("127.0.0.1", 0, _registry(), lambda: True, is_alive=lambda: alive[0])
    http.start()
    get = b"GET %s HTTP/1.1\r\nHost: t\r\n" + _CLOSE
    try:
        stuck = _exchange(http.port, get % b"/healthz")
        ready = _exchange(http.port, get % b"/readyz")
        alive[0] = True
        ok = _exchange(http.port, get % b"/healthz")
    finally:
        http.stop()
    assert stuck.startswith(b"HTTP/1.1 503")
    assert stuck.endswith(b"stuck\n")
    assert ready.startswith(b"HTTP/1.1 200")
    assert ok.startswith(b"HTTP/1.1 200")
    assert ok.endswith(b"ok\n")


def test_stop_releases_the_port_and_the_thread() -> None:
    """After `stop` the port can be bound again and no server thread is left."""
    http = HttpServer("127.0.0.1", 0, _registry(), lambda: True)
    http.start()
    port = http.port
    http.stop()
    assert not [t for t in threading.enumerate() if t.name == "http"]
    bind("127.0.0.1", port).close()


def test_a_port_in_use_is_a_clear_error() -> None:
    """Binding a port another socket holds raises HttpBindError naming the address."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(HttpBindError, match=rf"127\.0\.0\.1:{port}: Address already in use"):
            HttpServer("127.0.0.1", port, _registry(), lambda: True).start()


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
def test_an_unusable_host_is_a_clear_error(host: str) -> None:
    """A host that does not resolve, or is not this machine's, raises HttpBindError."""
    with pytest.raises(HttpBindError, match="--metrics-host"):
        HttpServer(host, 0, _registry(), lambda: True).start()


@pytest.mark.parametrize(
    ("host", "family"), [("localhost", socket.AF_INET), ("::1", socket.AF_INET6)]
)
def test_a_name_binds_ipv4_first_and_an_ipv6_address_works(host: str, family: int) -> None:
    """localhost stays 127.0.0.1 (as the old IPv4-only server bound); ::1 binds IPv6."""
    sock = bind(host, 0)
    try:
        assert sock.family == family
    finally:
        sock.close()
