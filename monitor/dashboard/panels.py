"""The dashboard's panels, in display order, each built from the metrics it shows."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client.registry import Collector

from monitor.dashboard.promql import (
    DATASOURCE,
    QUANTILES,
    RATE,
    Json,
    mean,
    quantile,
    scoped,
)
from monitor.service.metrics import Metrics


def _target(expr: str, legend: str, ref: int) -> Json:
    return {
        "datasource": DATASOURCE,
        "expr": expr,
        "legendFormat": legend,
        "refId": chr(ord("A") + ref),
    }


def _panel(
    title: str, targets: Sequence[tuple[str, str]], unit: str, kind: str = "timeseries"
) -> Json:
    return {
        "type": kind,
        "title": title,
        "datasource": DATASOURCE,
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "list", "placement": "bottom"}},
        "targets": [_target(expr, legend, i) for i, (expr, legend) in enumerate(targets)],
    }


def _latency(title: str, histogram: Collector) -> Json:
    return _panel(
        title, [(quantile(q, histogram), f"p{round(q * 100)}") for q in QUANTILES], unit="s"
    )


def panels(m: Metrics) -> list[Json]:
    """Build the dashboard's panels, in display order, from the metrics they show.

    Totals are summed over every picked shard; per-process state (connection, readiness,
    patients, throughput) is shown per shard, so a shard that falls behind stands out.

    Args:
        m: The daemon's metrics (a throwaway registry is enough: only names are read).

    Returns:
        Grafana panel objects without ids or grid positions.
    """
    connected = _panel(
        "MQTT connected by shard",
        [(f"min by (shard) ({scoped(m.mqtt_connected)})", "shard {{shard}}")],
        unit="bool",
    )
    connected["fieldConfig"]["defaults"]["mappings"] = [
        {"type": "value", "options": {"0": {"text": "disconnected", "color": "red"}}},
        {"type": "value", "options": {"1": {"text": "connected", "color": "green"}}},
    ]
    model = _panel(
        "Model version (number of daemons)",
        [(f"count by (version, device) ({scoped(m.model_info)})", "{{version}} on {{device}}")],
        "none",
        "stat",
    )
    model["options"] = {"textMode": "value_and_name", "colorMode": "none", "graphMode": "none"}
    return [
        _panel(
            "Messages/s by outcome (all shards)",
            [
                (f"sum by (outcome) (rate({scoped(m.messages)}[{RATE}]))", "{{outcome}}"),
                (f"sum(rate({scoped(m.received)}[{RATE}]))", "received"),
            ],
            unit="reqps",
        ),
        _panel(
            "Messages/s received by shard",
            [(f"sum by (shard) (rate({scoped(m.received)}[{RATE}]))", "shard {{shard}}")],
            unit="reqps",
        ),
        _latency("End-to-end latency (received -> verdict, all shards)", m.end_to_end_latency),
        _panel(
            "End-to-end latency p99 by shard",
            [(quantile(0.99, m.end_to_end_latency, by="shard"), "shard {{shard}}")],
            unit="s",
        ),
        _latency("Inference latency (one batched forward, all shards)", m.inference_latency),
        _panel(
            "Prediction error by vital (sigma units)",
            [
                (quantile(0.95, m.prediction_error, by="vital"), "p95 {{vital}}"),
                (mean(m.prediction_error, by="vital"), "mean {{vital}}"),
            ],
            unit="none",
        ),
        _panel(
            "Alerts raised by vital and severity (all shards)",
            [
                (
                    f"sum by (vital, severity) (increase({scoped(m.alerts)}[{RATE}]))",
                    "{{vital}} {{severity}}",
                ),
                (
                    f"sum by (reason) (increase({scoped(m.technical_alerts)}[{RATE}]))",
                    "technical: {{reason}}",
                ),
            ],
            unit="short",
        ),
        _panel(
            "Active patients",
            [
                (f"sum({scoped(m.active_patients)})", "all shards"),
                (f"sum by (shard) ({scoped(m.active_patients)})", "shard {{shard}}"),
            ],
            unit="short",
        ),
        _panel(
            "Batch size (windows per forward)",
            [(mean(m.batch_size), "avg"), (quantile(0.95, m.batch_size), "p95")],
            unit="short",
        ),
        connected,
        _panel(
            "MQTT reconnects by shard",
            [
                (
                    f"sum by (shard) (increase({scoped(m.mqtt_reconnects)}[{RATE}]))",
                    "shard {{shard}}",
                )
            ],
            unit="short",
        ),
        model,
        _panel(
            "Rejected and dropped payloads/s by reason (all shards)",
            [
                (f"sum by (reason) (rate({scoped(m.invalid)}[{RATE}]))", "invalid: {{reason}}"),
                (f"sum by (reason) (rate({scoped(m.dropped)}[{RATE}]))", "dropped: {{reason}}"),
            ],
            unit="reqps",
        ),
        _panel(
            "Readiness and pressure",
            [
                (f"sum({scoped(m.ready)})", "daemons ready"),
                (f"sum({scoped(m.degraded)})", "daemons degraded"),
                (f"sum({scoped(m.inference_stalled)})", "daemons with a hung forward"),
                (f"sum(1 - {scoped(m.alive)})", "daemons stuck"),
                (f"sum({scoped(m.alerts_undeliverable)})", "alerts refused by the broker"),
                (f"sum({scoped(m.pending_jobs)})", "pending windows"),
                (quantile(0.99, m.loop_lag), "event loop lag p99 (s)"),
            ],
            unit="short",
        ),
    ]
