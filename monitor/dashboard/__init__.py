"""The Grafana dashboard for the daemon, generated from the metrics registry.

Every metric name in a panel comes from `Metrics.create(...)`, never from a string typed here,
so renaming a metric changes the generated JSON and the test comparing it with the committed
`deploy/grafana/dashboards/vitals-monitor.json` fails until the file is regenerated:

    python -m monitor.dashboard --out deploy/grafana/dashboards/vitals-monitor.json

Nothing in it names a particular Grafana: the datasource is the `${datasource}` variable (any
Prometheus datasource, picked on import or from the dropdown), and every query is scoped by
the `instance` and `shard` variables. The panels aggregate across shards (`sum by`), so one
dashboard shows one daemon or N sharded daemons (docs/scale-out.md); `shard` is a label on the
process-level metrics, absent for a single unsharded daemon (`=~".*"` matches it then too).
"""

from __future__ import annotations

import json

from prometheus_client import CollectorRegistry

from monitor.dashboard.panels import panels
from monitor.dashboard.promql import Json, series
from monitor.dashboard.variables import variables
from monitor.service.metrics import Metrics

__all__ = ["DASHBOARD_UID", "build_dashboard", "panel_queries", "render", "series"]

DASHBOARD_UID = "vitals-monitor"


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
        "templating": {"list": variables(m)},
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
