"""Shared fixtures: a real Mosquitto per test on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

# One OpenMP thread: tests run beside brokers and daemons on a 2-core machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.support.mosquitto import Mosquitto


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Mosquitto]:
    """A fresh Mosquitto on 127.0.0.1:<free port>, stopped after the test."""
    broker = Mosquitto(workdir=tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
