"""Fixtures for the deploy checks: the real daemons that Prometheus scrapes.

A real Mosquitto, two `monitor run` (shards 0 and 1 of the scrape) and `monitor simulate
--scenario mixed` (20 patients at 10x real time, events after a short warm-up) run for the
module's lifetime, so every dashboard panel and alert rule is evaluated against what the
daemons actually export. Both daemons receive every patient (the broker is plain Mosquitto):
the check is on the dashboard's aggregation over two scraped targets, not on sharding.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from monitor.model.store import default_model_path
from tests.support.daemon import MONITOR, Daemon
from tests.support.mosquitto import Mosquitto

#: The simulator's clock runs 10x faster than the wall clock, so its sample times move ahead
#: of the daemon's; lift the codec's future-skew guard (5 s by default) for this run.
FAST_CLOCK_ENV = {"MONITOR_INGEST__MAX_FUTURE_SKEW_S": "1e9"}
#: Window 60 samples = 6 s at 10x; events start from 7 s and recur every 1 to 12 s per patient.
SIMULATE_ARGS = [
    "--scenario",
    "mixed",
    "--patients",
    "20",
    "--speed",
    "10",
    "--warmup",
    "70",
    "--gap",
    "10",
    "120",
]


@pytest.fixture(scope="module")
def live_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The model the daemon serves: VITALS_TEST_MODEL, else the shipped one, else a quick one.

    The quick one (seconds of training) keeps these checks runnable before a model ships.
    """
    path = Path(os.environ.get("VITALS_TEST_MODEL", str(default_model_path())))
    if (path / "card.json").is_file():
        return path
    from monitor.demo.model import train_quick

    quick = tmp_path_factory.mktemp("model") / "quick"
    train_quick(quick)
    return quick


@pytest.fixture(scope="module")
def live_daemon(tmp_path_factory: pytest.TempPathFactory, live_model: Path) -> Iterator[Daemon]:
    """Mosquitto + `monitor run` + `monitor simulate --scenario mixed`, for the module.

    Yields once the daemon is subscribed and the simulator publishes; the daemon scores
    samples from about 6 s on and raises alerts soon after (events start at 7 s).
    """
    workdir = tmp_path_factory.mktemp("live")
    broker = Mosquitto(workdir=workdir / "mosquitto")
    broker.start()
    daemon = Daemon(broker.url, live_model, env=FAST_CLOCK_ENV)
    simulator: subprocess.Popen[bytes] | None = None
    try:
        daemon.start(workdir / "daemon.log")
        daemon.wait_ready()
        with (workdir / "simulate.log").open("wb") as log:
            simulator = subprocess.Popen(
                [*MONITOR, "simulate", "--broker", broker.url, *SIMULATE_ARGS],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
        daemon.wait_for("monitor_received_total", 1)
        yield daemon
    finally:
        if simulator is not None:
            simulator.terminate()
            simulator.wait(10)
        if daemon.proc is not None:
            daemon.stop()
        broker.stop()


@pytest.fixture(scope="module")
def second_daemon(
    tmp_path_factory: pytest.TempPathFactory, live_daemon: Daemon, live_model: Path
) -> Iterator[Daemon]:
    """Another `monitor run` on the same broker, as a second shard for Prometheus."""
    daemon = Daemon(live_daemon.broker_url, live_model, env=FAST_CLOCK_ENV)
    try:
        daemon.start(tmp_path_factory.mktemp("second") / "daemon.log")
        daemon.wait_ready()
        daemon.wait_for("monitor_received_total", 1)
        yield daemon
    finally:
        if daemon.proc is not None:
            daemon.stop()


@pytest.fixture(scope="module")
def metrics_target(live_daemon: Daemon) -> str:
    """The real daemon's `/metrics` endpoint as Prometheus scrapes it: "host:port"."""
    return f"127.0.0.1:{live_daemon.metrics_port}"


@pytest.fixture(scope="module")
def shard_targets(metrics_target: str, second_daemon: Daemon) -> list[str]:
    """Both daemons' `/metrics` endpoints, in shard order."""
    return [metrics_target, f"127.0.0.1:{second_daemon.metrics_port}"]
