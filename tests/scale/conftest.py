"""Fixtures of the scale-out tests: a single-node nats-server per test."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.nats_server import NatsServer


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh nats-server (JetStream, MQTT, the mapping with P = 64, stream VITALS)."""
    if shutil.which("nats-server") is None:
        pytest.skip("no nats-server")
    server = NatsServer(workdir=tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.stop()
