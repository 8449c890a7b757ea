"""Fixtures for the deploy checks: the scrape target that Prometheus watches."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from prometheus_client import CollectorRegistry, start_http_server

from monitor.core.vitals import CLINICAL_VITALS
from monitor.service.metrics import Metrics
from tests.support.mosquitto import free_port


def _observe(metrics: Metrics, step: int) -> None:
    """One tick of a plausible daemon: a batch scored, some rejects, now and then an alert."""
    batch = 1 + step % 16
    metrics.received.inc(batch + 1)
    metrics.messages.labels(outcome="scored").inc(batch)
    metrics.messages.labels(outcome="invalid").inc()
    metrics.invalid.labels(reason="json").inc()
    metrics.dropped.labels(reason="queue_full").inc(step % 2)
    metrics.batch_size.observe(batch)
    metrics.inference_latency.observe(0.0004 + 0.0001 * (step % 5))
    for i in range(batch):
        metrics.end_to_end_latency.observe(0.001 + 0.0005 * ((step + i) % 7))
    for i, vital in enumerate(CLINICAL_VITALS):
        metrics.prediction_error.labels(vital=vital).observe(0.3 * ((step + i) % 10))
    metrics.alerts.labels(vital=CLINICAL_VITALS[step % 6], severity="medium").inc(step % 3 == 0)
    metrics.technical_alerts.labels(reason="signal_lost").inc(step % 5 == 0)
    metrics.mqtt_reconnects.inc(step % 50 == 0)
    metrics.active_patients.set(20)
    metrics.pending_jobs.set(step % 4)
    metrics.loop_lag.observe(0.001 * (1 + step % 3))


@pytest.fixture(scope="module")
def metrics_target() -> Iterator[str]:
    """A live `/metrics` endpoint on 127.0.0.1:<free port>; yields "host:port".

    Stands in for `monitor run` until the daemon is wired here: a thread keeps observing
    values into a real `Metrics` registry while prometheus_client's HTTP server exposes it.
    Module-scoped, like the Prometheus that scrapes it.
    """
    metrics = Metrics.create(CollectorRegistry())
    metrics.model_info.labels(version="test-1", device="cpu").set(1)
    metrics.mqtt_connected.set(1)
    metrics.ready.set(1)
    metrics.degraded.set(0)
    port = free_port()
    server, thread = start_http_server(port, addr="127.0.0.1", registry=metrics.registry)
    stop = threading.Event()

    def tick() -> None:
        step = 0
        while not stop.wait(0.05):
            _observe(metrics, step)
            step += 1

    ticker = threading.Thread(target=tick, name="observe", daemon=True)
    ticker.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        stop.set()
        ticker.join()
        server.shutdown()
        server.server_close()
        thread.join()
