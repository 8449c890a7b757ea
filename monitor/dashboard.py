"""The Grafana dashboard for the daemon, generated from the metrics registry.

Every metric name in a panel comes from `Metrics.create(...)`, never from a string typed here,
so renaming a metric changes the generated JSON and the test comparing it with the committed
`deploy/grafana/dashboards/vitals-monitor.json` fails until the file is regenerated:

    python -m monitor.dashboard --out deploy/grafana/dashboards/vitals-monitor.json
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.registry import Collector

from monitor.service.metrics import Metrics

#: The datasource uid that deploy/grafana/provisioning/datasources/prometheus.yml defines.
DATASOURCE_UID = "vitals-prometheus"
DASHBOARD_UID = "vitals-monitor"
#: Grafana's own rate window: at least four scrape intervals, whatever the zoom.
RATE = "$__rate_interval"
QUANTILES: tuple[float, ...] = (0.5, 0.95, 0.99)

Json = dict[str, Any]


def series(collector: Collector, suffix: str = "") -> str:
    """Name the exposed series of a collector, as Prometheus stores it.

    Args:
        collector: A counter, gauge or histogram of `Metrics`.
        suffix: For histograms, `_bucket`, `_sum` or `_count`.

    Returns:
        The family name, with `_total` appended for counters.
    """
    (family,) = collector.describe()  # type: ignore[attr-defined]  # every metric has it
    name: str = family.name
    if family.type == "counter":
        return f"{name}_total"
    if family.type == "histogram" and suffix not in ("_bucket", "_sum", "_count"):
        raise ValueError(f"histogram {name} needs a _bucket/_sum/_count suffix")
    return name + suffix


def quantile(q: float, histogram: Collector, by: str = "") -> str:
    """PromQL for the q-quantile of a histogram over the rate window, optionally per label."""
    labels = f"le, {by}" if by else "le"
    bucket = series(histogram, "_bucket")
    return f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}[{RATE}])))"


def mean(histogram: Collector, by: str = "") -> str:
    """PromQL for the mean observation of a histogram over the rate window."""
    grouping = f" by ({by})" if by else ""
    total, count = series(histogram, "_sum"), series(histogram, "_count")
    return f"sum{grouping} (rate({total}[{RATE}])) / sum{grouping} (rate({count}[{RATE}]))"


def _target(expr: str, legend: str, ref: int) -> Json:
    return {
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
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
        "datasource": {"type": "prometheus", "uid": DATASOURCE_UID},
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

    Args:
        m: The daemon's metrics (a throwaway registry is enough: only names are read).

    Returns:
        Grafana panel objects without ids or grid positions.
    """
    connected = _panel("MQTT connected", [(series(m.mqtt_connected), "connected")], unit="bool")
    connected["fieldConfig"]["defaults"]["mappings"] = [
        {"type": "value", "options": {"0": {"text": "disconnected", "color": "red"}}},
        {"type": "value", "options": {"1": {"text": "connected", "color": "green"}}},
    ]
    model = _panel(
        "Model version", [(series(m.model_info), "{{version}} on {{device}}")], "none", "stat"
    )
    model["options"] = {"textMode": "name", "colorMode": "none", "graphMode": "none"}
    return [
        _panel(
            "Messages/s by outcome",
            [
                (f"sum by (outcome) (rate({series(m.messages)}[{RATE}]))", "{{outcome}}"),
                (f"sum(rate({series(m.received)}[{RATE}]))", "received"),
            ],
            unit="reqps",
        ),
        _latency("End-to-end latency (received -> verdict)", m.end_to_end_latency),
        _latency("Inference latency (one batched forward)", m.inference_latency),
        _panel(
            "Prediction error by vital (sigma units)",
            [
                (quantile(0.95, m.prediction_error, by="vital"), "p95 {{vital}}"),
                (mean(m.prediction_error, by="vital"), "mean {{vital}}"),
            ],
            unit="none",
        ),
        _panel(
            "Alerts raised by vital and severity",
            [
                (
                    f"sum by (vital, severity) (increase({series(m.alerts)}[{RATE}]))",
                    "{{vital}} {{severity}}",
                ),
                (
                    f"sum by (reason) (increase({series(m.technical_alerts)}[{RATE}]))",
                    "technical: {{reason}}",
                ),
            ],
            unit="short",
        ),
        _panel("Active patients", [(series(m.active_patients), "patients")], unit="short"),
        _panel(
            "Batch size (windows per forward)",
            [(mean(m.batch_size), "avg"), (quantile(0.95, m.batch_size), "p95")],
            unit="short",
        ),
        connected,
        _panel(
            "MQTT reconnects",
            [(f"increase({series(m.mqtt_reconnects)}[{RATE}])", "reconnects")],
            unit="short",
        ),
        model,
        _panel(
            "Rejected and dropped payloads/s by reason",
            [
                (f"sum by (reason) (rate({series(m.invalid)}[{RATE}]))", "invalid: {{reason}}"),
                (f"sum by (reason) (rate({series(m.dropped)}[{RATE}]))", "dropped: {{reason}}"),
            ],
            unit="reqps",
        ),
        _panel(
            "Readiness and pressure",
            [
                (series(m.ready), "ready"),
                (series(m.degraded), "degraded"),
                (series(m.pending_jobs), "pending windows"),
                (quantile(0.99, m.loop_lag), "event loop lag p99 (s)"),
            ],
            unit="short",
        ),
    ]


def build_dashboard(metrics: Metrics | None = None) -> Json:
    """Build the whole Grafana dashboard object.

    Args:
        metrics: Metrics to read names from; a fresh private registry when None.

    Returns:
        A dashboard object as Grafana's file provisioning expects it.
    """
    m = metrics if metrics is not None else Metrics.create(CollectorRegistry())
    laid_out = []
    for i, panel in enumerate(panels(m)):
        # Two panels per row, each half of Grafana's 24-column grid.
        grid = {"h": 8, "w": 12, "x": 12 * (i % 2), "y": 8 * (i // 2)}
        laid_out.append({"id": i + 1, "gridPos": grid, **panel})
    return {
        "uid": DASHBOARD_UID,
        "title": "Vitals monitor",
        "tags": ["vitals-monitor"],
        "timezone": "browser",
        "editable": True,
        "schemaVersion": 39,
        "version": 1,
        "refresh": "10s",
        "time": {"from": "now-15m", "to": "now"},
        "annotations": {"list": []},
        "templating": {"list": []},
        "panels": laid_out,
    }


def panel_queries(dashboard: Json) -> list[tuple[str, str]]:
    """List (panel title, PromQL expression) for every target of every panel."""
    return [
        (panel["title"], target["expr"])
        for panel in dashboard["panels"]
        for target in panel["targets"]
    ]


def render(dashboard: Json) -> str:
    """Serialise a dashboard exactly as it is committed (stable key order, final newline)."""
    return json.dumps(dashboard, indent=2, sort_keys=True) + "\n"


def main(argv: Sequence[str] | None = None) -> None:
    """Write the dashboard JSON to `--out`, or print it."""
    parser = argparse.ArgumentParser(prog="python -m monitor.dashboard", description=__doc__)
    parser.add_argument("--out", type=Path, default=None, help="file to write (default: stdout)")
    args = parser.parse_args(argv)
    text = render(build_dashboard())
    if args.out is None:
        print(text, end="")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)


if __name__ == "__main__":
    main()
