"""The daemon's Prometheus metrics, all registered on one injected `CollectorRegistry`.

Names are a contract (docs/metrics.md, the Grafana dashboard and the alert rules use them).
No label ever carries a patient id or a vital value: labels are drawn from small fixed sets.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import floatToGoString

#: From ~100 microseconds to a few seconds: the daemon's latencies, not web defaults.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
)
#: Absolute residual in units of the model card's per-vital sigma.
SIGMA_BUCKETS: tuple[float, ...] = (0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0, 12.0, 16.0)
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
LOOP_LAG_BUCKETS: tuple[float, ...] = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Metrics:
    """Every metric the daemon exports. Build with `Metrics.create(registry)`."""

    registry: CollectorRegistry
    received: Counter
    messages: Counter
    invalid: Counter
    artifacts: Counter
    dropped: Counter
    prediction_error: BatchHistogram
    inference_latency: Histogram
    end_to_end_latency: BatchHistogram
    batch_size: Histogram
    alerts: Counter
    technical_alerts: Counter
    active_alerts: Gauge
    alerts_refused: Counter
    alerts_undeliverable: Gauge
    active_patients: Gauge
    pending_jobs: Gauge
    mqtt_connected: Gauge
    mqtt_reconnects: Counter
    sequence_gaps: Counter
    window_resets: Counter
    evictions: Counter
    device_restarts: Counter
    order_suspect: Counter
    patients_refused: Gauge
    ready: Gauge
    alive: Gauge
    degraded: Gauge
    inference_stalled: Gauge
    snapshot_writes: Counter
    outbox_write_failures: Counter
    loop_lag: Histogram
    model_info: Gauge

    @classmethod
    def create(cls, registry: CollectorRegistry) -> Metrics:
        """Create and register every metric on `registry` (a fresh one per daemon or test)."""
        r = registry
        return cls(
            registry=r,
            received=Counter(
                "monitor_received", "Payloads handed over by the MQTT client.", registry=r
            ),
            messages=Counter(
                "monitor_messages",
                "Final outcome of every received unit: one per sample of a decoded message, "
                "one per rejected or dropped payload.",
                ["outcome"],
                registry=r,
            ),
            invalid=Counter(
                "monitor_invalid_messages", "Payloads refused by the codec.", ["reason"], registry=r
            ),
            artifacts=Counter(
                "monitor_artifact_values",
                "Implausible values dropped from a payload scored on its other vitals (a "
                "partial-vitals model); a payload with nothing plausible left is refused "
                "(monitor_invalid_messages_total{reason=artifact}).",
                ["vital"],
                registry=r,
            ),
            dropped=Counter(
                "monitor_dropped_messages",
                "Payloads dropped before decoding (bounded queues: queue_full, alert_queue_full, "
                "shutdown), or samples whose patient "
                "was evicted while they waited for the model (evicted).",
                ["reason"],
                registry=r,
            ),
            prediction_error=BatchHistogram(
                "monitor_prediction_error",
                "Absolute one-step-ahead residual in units of the patient's residual sigma (|z|).",
                ["vital"],
                buckets=SIGMA_BUCKETS,
                registry=r,
            ),
            inference_latency=Histogram(
                "monitor_inference_latency_seconds",
                "Duration of one batched forward pass.",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            end_to_end_latency=BatchHistogram(
                "monitor_end_to_end_latency_seconds",
                "From message received to verdict (scored and alerts decided).",
                buckets=LATENCY_BUCKETS,
                registry=r,
            ),
            batch_size=Histogram(
                "monitor_batch_size",
                "Windows per batched forward.",
                buckets=BATCH_BUCKETS,
                registry=r,
            ),
            alerts=Counter(
                "monitor_alerts",
                "Physiological alerts raised.",
                ["vital", "severity"],
                registry=r,
            ),
            technical_alerts=Counter(
                "monitor_technical_alerts",
                "Technical alerts raised (signal lost, artifact, monitoring degraded).",
                ["reason"],
                registry=r,
            ),
            alerts_refused=Counter(
                "monitor_alerts_refused",
                "Alert publications the broker received and refused (MQTT 5 reason code: "
                "not_authorized is an ACL without write access to the alert topics), or that "
                "raised in the client (client_error); each is offered again later.",
                ["reason"],
                registry=r,
            ),
            alerts_undeliverable=Gauge(
                "monitor_alerts_undeliverable",
                "Alerts (and patients' state messages of open alerts) the broker refused, "
                "or the client failed to publish, and that have not been delivered since "
                "(the daemon is not ready while any is).",
                registry=r,
            ),
            active_alerts=Gauge(
                "monitor_active_alerts", "Alerts currently raised.", ["kind"], registry=r
            ),
            active_patients=Gauge(
                "monitor_active_patients", "Patients with a window in memory.", registry=r
            ),
            pending_jobs=Gauge(
                "monitor_pending_windows", "Windows waiting for inference.", registry=r
            ),
            mqtt_connected=Gauge(
                "monitor_mqtt_connected", "1 while connected and subscribed.", registry=r
            ),
            mqtt_reconnects=Counter(
                "monitor_mqtt_reconnects",
                "Connection losses followed by a reconnect attempt.",
                registry=r,
            ),
            sequence_gaps=Counter(
                "monitor_sequence_gaps",
                "Sequence numbers skipped by patients' streams (messages never received).",
                registry=r,
            ),
            window_resets=Counter(
                "monitor_window_resets", "Windows reset after a time gap.", registry=r
            ),
            evictions=Counter(
                "monitor_evictions",
                "Patients evicted (idle past the TTL, or never warmed up to make room).",
                registry=r,
            ),
            device_restarts=Counter(
                "monitor_device_restarts",
                "Devices that restarted their sequence counter (seq back, sample time on).",
                registry=r,
            ),
            order_suspect=Counter(
                "monitor_order_suspect",
                "Samples accepted across an implausible jump of their patient's order state "
                "(seq_jump, clock_back, clock_jump; docs/time.md).",
                ["kind"],
                registry=r,
            ),
            patients_refused=Gauge(
                "monitor_patients_refused",
                "Patients whose data arrives but who are not monitored (an open "
                "patient_refused technical alert each).",
                registry=r,
            ),
            ready=Gauge("monitor_ready", "1 when /readyz would answer 200.", registry=r),
            alive=Gauge(
                "monitor_alive",
                "1 when /healthz would answer 200: the daemon makes progress (read at scrape "
                "time, so a stuck event loop reads 0).",
                registry=r,
            ),
            degraded=Gauge(
                "monitor_degraded", "1 while inference cannot keep up (work is shed).", registry=r
            ),
            inference_stalled=Gauge(
                "monitor_inference_stalled",
                "1 while a model forward has run past model.stall_after_s (no patient scored; "
                "an inference_stalled technical alert is open).",
                registry=r,
            ),
            snapshot_writes=Counter(
                "monitor_snapshot_writes",
                "Patient-state snapshot writes (the checkpoints every "
                "state.checkpoint_interval_s and the one at a graceful stop), by result: ok, "
                "or failed (a full or read-only disk; a restart after a crash would be cold).",
                ["result"],
                registry=r,
            ),
            outbox_write_failures=Counter(
                "monitor_outbox_write_failures",
                "Alert outbox writes that failed (a full or read-only disk): those alerts and "
                "open-alert changes are published from memory but not kept for a restart.",
                registry=r,
            ),
            loop_lag=Histogram(
                "monitor_event_loop_lag_seconds",
                "Event loop scheduling delay, sampled periodically.",
                buckets=LOOP_LAG_BUCKETS,
                registry=r,
            ),
            model_info=Gauge(
                "monitor_model_info",
                "The model served (value 1).",
                ["version", "device"],
                registry=r,
            ),
        )


class BatchHistogramChild:
    """One label set of a `BatchHistogram`: bucket counts kept in numpy, observed in batches."""

    def __init__(self, bounds: npt.NDArray[np.float64]) -> None:
        self._bounds = bounds
        self._counts = np.zeros(len(bounds), dtype=np.float64)
        self._sum = 0.0
        self._lock = threading.Lock()  # collect runs on the HTTP thread

    def observe_many(self, values: npt.NDArray[np.float64]) -> None:
        """Observe many values: each lands in the first bucket whose upper bound is >= it."""
        if values.size == 0:
            return
        counts = np.bincount(
            np.searchsorted(self._bounds, values, side="left"), minlength=len(self._bounds)
        )
        total = float(values.sum())
        with self._lock:
            self._counts += counts[: len(self._bounds)]
            self._sum += total

    def observe(self, value: float) -> None:
        """Observe one value."""
        self.observe_many(np.asarray([value], dtype=np.float64))

    def snapshot(self) -> tuple[npt.NDArray[np.float64], float]:
        """Per-bucket counts (not cumulative) and the sum, taken together."""
        with self._lock:
            return self._counts.copy(), self._sum


class BatchHistogram(Collector):
    """A histogram observed in numpy batches, exported through prometheus-client's
    supported custom-collector API (`HistogramMetricFamily`).

    prometheus-client has no batch observe; its `Histogram` would take one call (and one
    lock) per value. This keeps the counts itself and yields them on each scrape, with the
    same series as a `Histogram` of that name (``_bucket``, ``_count``, ``_sum``).

    Args:
        name: Metric name.
        documentation: Help text.
        labelnames: Label names (small fixed sets only).
        buckets: Upper bounds, ascending; +Inf is added.
        registry: Where it is registered.
    """

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self._labelnames = self.labelnames  # the name prometheus-client's metrics use
        self._bounds = np.asarray([*buckets, math.inf], dtype=np.float64)
        self._children: dict[tuple[str, ...], BatchHistogramChild] = {}
        self._lock = threading.Lock()
        registry.register(self)

    def labels(self, *values: str) -> BatchHistogramChild:
        """The child for these label values (created on first use)."""
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        with self._lock:
            child = self._children.get(values)
            if child is None:
                child = self._children[values] = BatchHistogramChild(self._bounds)
            return child

    def observe_many(self, values: npt.NDArray[np.float64]) -> None:
        """Observe many values on a histogram without labels."""
        self.labels().observe_many(values)

    def observe(self, value: float) -> None:
        """Observe one value on a histogram without labels."""
        self.labels().observe(value)

    def describe(self) -> list[Metric]:
        """The metric family this collector yields (for the registry's name checks)."""
        return [HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)]

    def collect(self) -> list[Metric]:
        """The current counts, as prometheus-client's histogram family."""
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        bounds = [floatToGoString(b) for b in self._bounds]  # type: ignore[no-untyped-call]
        with self._lock:
            children = list(self._children.items())
        for key, child in children:
            counts, total = child.snapshot()
            family.add_metric(
                list(key), list(zip(bounds, np.cumsum(counts).tolist(), strict=True)), total
            )
        return [family]


def observe_many(
    histogram: BatchHistogram | BatchHistogramChild, values: npt.NDArray[np.float64]
) -> None:
    """Observe many values at once: one numpy pass instead of one `observe` call per value."""
    histogram.observe_many(values)
