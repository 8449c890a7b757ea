"""Fixtures for the reliability suite: a small served model, figures, payloads, listeners."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
import torch

from monitor.core.vitals import CLINICAL_VITALS
from monitor.model.card import (
    FeatureMetrics,
    Hyperparameters,
    Metrics,
    ModelCard,
    Normalisation,
    TrainingInfo,
)
from monitor.model.lstm import MedicalLSTM
from monitor.model.store import save_model
from monitor.transports.mqtt.config import BrokerConfig
from monitor.transports.mqtt.publisher import SyncPublisher
from tests.support.daemon import STARTUP_TIMEOUT_S, Daemon
from tests.support.listener import Listener

#: Typical adult values, in CLINICAL_VITALS order.
NORMAL = {
    "heart_rate": 75.0,
    "spo2": 97.0,
    "resp_rate": 16.0,
    "bp_sys": 120.0,
    "bp_dia": 80.0,
    "temperature": 37.0,
}
SIGMA = [5.0, 1.0, 2.0, 8.0, 6.0, 0.3]
WINDOW = 8


def make_card() -> ModelCard:
    """A valid card for a small random model over the six clinical vitals."""
    n = len(CLINICAL_VITALS)
    fm = FeatureMetrics(test_rmse=1.0, persistence_rmse=1.0, noise_floor_rmse=None, n_test=1)
    return ModelCard(
        model_version="0" * 64,
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        hyperparameters=Hyperparameters(input_size=n, hidden_size=8, num_layers=1, output_size=n),
        features=list(CLINICAL_VITALS),
        window=WINDOW,
        sample_period_s=1.0,
        normalisation=Normalisation(mean=[NORMAL[v] for v in CLINICAL_VITALS], std=SIGMA),
        residual_sigma=SIGMA,
        training=TrainingInfo(recipe="test", seed=0, epochs=0, batch_size=1, lr=1e-3, data="none"),
        library_versions={"torch": torch.__version__},
        metrics=Metrics(overall=fm, per_feature={v: fm for v in CLINICAL_VITALS}),
    )


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small untrained model directory (random weights, hidden size 8, window 8).

    The suite tests the daemon's plumbing, not the model's skill: a fixed-seed random model
    predicts quickly and its alerts are irrelevant to what these tests count.
    """
    torch.manual_seed(0)
    n = len(CLINICAL_VITALS)
    path = tmp_path_factory.mktemp("model")
    save_model(path, MedicalLSTM(n, 8, 1, n), make_card())
    return path


def payload(pid: str, seq: int, t: float | None = None, **vitals: float) -> bytes:
    """A single-sample message for `pid` with normal vitals (overridden by `vitals`).

    Values wobble a little with `seq`: a real sensor is never exactly constant, and a
    constant one would (rightly) raise 'flatline' technical alerts.
    """
    wobble = {
        name: value + 0.1 * ((seq * 7 + i) % 5) for i, (name, value) in enumerate(NORMAL.items())
    }
    body = {
        "v": 1,
        "patient_id": pid,
        "t": time.time() if t is None else t,
        "seq": seq,
        "vitals": {**wobble, **vitals},
    }
    return json.dumps(body).encode()


class Feed:
    """Devices `<prefix>0`, `<prefix>1`, ... each sending one sample per round (`payload`),
    in sequence, through one publisher.

    Attributes:
        seq: The next round's sequence number (rounds sent so far).
    """

    def __init__(
        self, url: str, prefix: str, patients: int = 3, qos: int = 0, pause_s: float = 0.02
    ) -> None:
        self.pub = SyncPublisher(BrokerConfig(url=url))
        self.pub.connect()
        self.ids = [f"{prefix}{i}" for i in range(patients)]
        self.qos = qos
        self.pause_s = pause_s
        self.seq = 0

    @property
    def sent(self) -> int:
        """Messages sent so far."""
        return self.seq * len(self.ids)

    def send(self, rounds: int, **vitals: float) -> None:
        """Send `rounds` rounds (normal vitals, overridden by `vitals`), pausing after each."""
        for _ in range(rounds):
            self.pub.publish_many(
                [(f"vitals/{p}", payload(p, self.seq, **vitals)) for p in self.ids], self.qos
            )
            self.seq += 1
            time.sleep(self.pause_s)

    def close(self) -> None:
        """Disconnect."""
        self.pub.close()


class Figures:
    """Measured figures of the suite: printed, and merged into $RELIABILITY_FIGURES (JSON)."""

    def __init__(self, path: str | None) -> None:
        self.path = Path(path) if path else None

    def __call__(self, name: str, value: Any) -> None:
        """Record one figure under `name`."""
        print(f"FIGURE {name} = {value}")
        if self.path is None:
            return
        data = json.loads(self.path.read_text()) if self.path.exists() else {}
        data[name] = value
        self.path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")


@pytest.fixture
def figure() -> Callable[[str, Any], None]:
    """Record a measured figure: ``figure("reconnect_p95_s", 0.8)``."""
    return Figures(os.environ.get("RELIABILITY_FIGURES"))


@pytest.fixture
def listener_factory() -> Iterator[Callable[..., Listener]]:
    """Make listeners that are closed after the test."""
    made: list[Listener] = []

    def make(port: int, topic: str = "alerts/#") -> Listener:
        made.append(Listener(port, topic))
        return made[-1]

    yield make
    for item in made:
        item.close()


def publisher(port: int, client_id: str = "") -> paho.Client:
    """A connected paho client with its network loop running (QoS 1 publishing)."""
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id)
    client.max_inflight_messages_set(0)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def outcomes_balance(samples: dict[Any, float]) -> tuple[float, float]:
    """Return (monitor_received_total, sum of monitor_messages_total over outcomes)."""
    received = sum(v for (n, _), v in samples.items() if n == "monitor_received_total")
    outcomes = sum(v for (n, _), v in samples.items() if n == "monitor_messages_total")
    return received, outcomes


@pytest.fixture(autouse=True)
def _stop_leftover_daemons(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Stop every daemon a test started, even when the test failed half-way."""
    started: list[Daemon] = []
    original = Daemon.start

    def start(self: Daemon, log_path: Path, timeout: float = STARTUP_TIMEOUT_S) -> None:
        started.append(self)
        original(self, log_path, timeout)

    monkeypatch.setattr(Daemon, "start", start)
    yield
    for daemon in started:
        if daemon.proc is not None and daemon.proc.poll() is None:
            daemon.stop()
