"""The daemon shell on a transport that is not MQTT: the `LiveTransport` port is enough.

An in-memory transport (what a second transport adapter implements, and nothing else)
delivers keyed payloads, takes the alerts at its own addresses and closes on a graceful
stop; the daemon counts every unit once, and its housekeeping (the engine's `Ticks` on the
wall clock) raises 'signal lost' for the patients gone silent, published through it.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from monitor.engine.transport import Keyed, Shell
from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.service.app import Daemon
from monitor.settings import load_settings
from tests.reliability.conftest import payload


class _Link:
    """A connection that is never lost."""

    def on_lost(self, callback: Callable[[], None]) -> None:
        pass

    def raise_if_lost(self) -> None:
        pass


class MemoryTransport:
    """Delivers `messages` once connected, publishes alerts into a list, stops on request."""

    endpoint = "memory://"

    def __init__(self, messages: list[Keyed]) -> None:
        self.messages = messages
        self.published: list[tuple[str, bytes, bool]] = []
        self.disconnect_s: float | None = None

    def alert_address(self, patient_id: str | None) -> str:
        return f"out/{patient_id or 'everyone'}"

    def state_address(self, patient_id: str | None) -> str:
        return f"open/{patient_id or 'everyone'}"

    async def publish(self, address: str, payload: bytes, retain: bool = False) -> bool:
        self.published.append((address, payload, retain))
        return True

    async def run(self, shell: Shell) -> None:
        subscribed: list[bool] = []

        async def subscribe() -> None:
            subscribed.append(True)

        await shell.going_live(subscribe)
        assert subscribed == [True]
        shell.connected(self)
        shell.refused("topic_not_utf8")  # a unit the transport refused: counted once
        shell.received(self.messages)
        consume = asyncio.create_task(shell.consume(_Link()))
        await shell.wait_stop()
        consume.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await consume
        self.disconnect_s = await shell.finish()
        shell.disconnected()
        await shell.final_flush()


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    """The shipped model on the CPU."""
    return Predictor(load_model(default_model_path()), "cpu")


def test_the_daemon_serves_any_live_transport(predictor: Predictor) -> None:
    """Every delivered and refused unit ends in one outcome, and each silent patient's
    'signal lost' goes out through the transport at its address."""
    settings = load_settings(
        alerts={"outbox": False},
        metrics={"port": 0},
        window={"stale_after_s": 1.0},
        housekeeping_interval_s=0.2,
        shutdown_grace_s=2.0,
    )
    first = [("p1", payload("p1", s)) for s in range(1, 9)]
    second = [("p2", payload("p2", s)) for s in range(1, 9)]
    transport = MemoryTransport([m for pair in zip(first, second, strict=True) for m in pair])
    daemon = Daemon(settings, predictor, transport)

    async def scenario() -> None:
        serve = asyncio.create_task(daemon.serve())
        deadline = time.monotonic() + 20
        while len(transport.published) < 4:
            assert time.monotonic() < deadline, "no alert and state reached the transport"
            await asyncio.sleep(0.05)
        daemon.request_stop()
        assert await serve == 0

    asyncio.run(scenario())
    registry = daemon.metrics.registry
    received = registry.get_sample_value("monitor_received_total")
    outcomes = sum(
        s.value
        for family in registry.collect()
        if family.name == "monitor_messages"
        for s in family.samples
        if s.name == "monitor_messages_total"
    )
    assert received == outcomes == 17
    assert (
        registry.get_sample_value("monitor_invalid_messages_total", {"reason": "topic_not_utf8"})
        == 1
    )
    lost = {a for a, p, r in transport.published if not r and b'"reason":"signal_lost"' in p}
    assert lost == {"out/p1", "out/p2"}
    # Each patient's open alerts, retained, at the transport's state address.
    states = {a for a, p, r in transport.published if r and b'"reason":"signal_lost"' in p}
    assert states == {"open/p1", "open/p2"}
    assert transport.disconnect_s is not None
    assert transport.disconnect_s > 0


def test_the_daemon_shell_loads_no_mqtt_client() -> None:
    """`service.app` imports no MQTT client library: the transport is chosen in
    `service.main` (the composition root), which does."""
    code = (
        "import sys, monitor.service.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiomqtt', 'paho')"
        " or m == 'monitor.transports.mqtt.ingress'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
