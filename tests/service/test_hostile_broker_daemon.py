"""The daemon against a scripted hostile broker: refused packets are counted outcomes."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from structlog.testing import capture_logs

from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.service.app import Daemon
from monitor.service.main import compose
from monitor.settings import load_settings
from tests.reliability.conftest import payload
from tests.support.fake_broker import FakeBroker, publish, remaining


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """The shipped model on the CPU."""
    return Predictor(load_model(default_model_path()), "cpu")


def run_against(broker: FakeBroker, predictor: Predictor, received: int) -> Daemon:
    """Serve the daemon on `broker` until `received` units were counted, then stop it."""
    settings = load_settings(
        broker={"url": f"mqtt://127.0.0.1:{broker.port}", "protocol": "3.1.1"},
        ingest={"qos": 1, "max_payload_bytes": 1024},
        alerts={"outbox": False},
        metrics={"port": 0},
        shutdown_grace_s=1.0,
    )
    daemon = compose(settings, predictor)

    async def scenario() -> None:
        serve = asyncio.create_task(daemon.serve())
        deadline = time.monotonic() + 20
        while count(daemon, "monitor_received_total") < received:
            assert time.monotonic() < deadline, "the daemon did not count what was sent"
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.2)
        daemon.request_stop()
        assert await serve == 0

    try:
        asyncio.run(scenario())
    finally:
        broker.close()
    return daemon


def count(daemon: Daemon, name: str, **labels: str) -> float:
    """One sample of the daemon's registry (0 when absent)."""
    value = daemon.metrics.registry.get_sample_value(name, labels)
    return 0.0 if value is None else float(value)


def outcomes(daemon: Daemon) -> float:
    """The sum of monitor_messages_total over every outcome label."""
    return sum(
        sample.value
        for metric in daemon.metrics.registry.collect()
        for sample in metric.samples
        if sample.name == "monitor_messages_total"
    )


def test_non_utf8_topics_are_invalid_outcomes_and_later_messages_count(
    predictor: Predictor,
) -> None:
    """Two PUBLISH with non-UTF-8 topics (QoS 0 and 1) and one valid message: 3 received,
    2 invalid{topic_not_utf8}, the valid one decoded; one connection, no storm of logs."""

    def script(conn: socket.socket) -> None:
        conn.sendall(
            publish(b"vitals/\xff", b"{}")
            + publish(b"vitals/\xc3(", b"{}", qos=1, mid=3)
            + publish(b"vitals/a01", payload("a01", 0))
        )
        while conn.recv(4096):
            pass

    with capture_logs() as logs:
        daemon = run_against(FakeBroker(script), predictor, received=3)
    assert count(daemon, "monitor_received_total") == 3
    assert count(daemon, "monitor_invalid_messages_total", reason="topic_not_utf8") == 2
    assert count(daemon, "monitor_messages_total", outcome="invalid") == 2
    assert outcomes(daemon) == 3
    assert count(daemon, "monitor_mqtt_reconnects_total") == 0
    assert len([e for e in logs if e.get("reason") == "topic_not_utf8"]) == 1  # rate-limited


def test_an_oversize_packet_drops_the_connection_counted_once(predictor: Predictor) -> None:
    """A PUBLISH declaring 200 MB (limit 1 KiB + headroom): counted as received and
    dropped{packet_too_large}, logged once, the connection dropped (then reconnects)."""

    def script(conn: socket.socket) -> None:
        conn.sendall(b"\x30" + remaining(200_000_000) + b"\x00\x08vitals/a")
        try:
            for _ in range(100):
                conn.sendall(b"\x00" * 65_536)
        except OSError:
            pass

    with capture_logs() as logs:
        daemon = run_against(FakeBroker(script), predictor, received=1)
    assert count(daemon, "monitor_dropped_messages_total", reason="packet_too_large") == 1
    assert count(daemon, "monitor_messages_total", outcome="dropped") == 1
    assert outcomes(daemon) == count(daemon, "monitor_received_total") == 1
    assert [e["event"] for e in logs].count("broker_packet_too_large") == 1
