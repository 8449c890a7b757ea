"""The dashboard's variables: the datasource, and the instances and shards to show."""

from __future__ import annotations

from monitor.dashboard.promql import DATASOURCE, Json, series
from monitor.service.metrics import Metrics


def _query_variable(name: str, label: str, expr: str) -> Json:
    """A multi-value dashboard variable over the values of `label` in `expr` ("All" = `.*`)."""
    definition = f"label_values({expr}, {label})"
    return {
        "name": name,
        "label": name.capitalize(),
        "type": "query",
        "datasource": DATASOURCE,
        "definition": definition,
        "query": {"query": definition, "refId": f"{name}-values"},
        "refresh": 2,  # on time range change: a new shard appears without a reload
        "multi": True,
        "includeAll": True,
        "allValue": ".*",
        "current": {"selected": True, "text": ["All"], "value": ["$__all"]},
        "sort": 3,  # numerical ascending: shard 2 before shard 10
        "hide": 0,
        "options": [],
        "regex": "",
    }


def variables(m: Metrics) -> list[Json]:
    """The dashboard's variables: datasource, then instance, then shard (each filters the next).

    Args:
        m: The daemon's metrics; the values are read from the model-info gauge, which every
            daemon exports exactly once.

    Returns:
        Grafana templating entries, in display order.
    """
    datasource = {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},  # Grafana picks the default Prometheus datasource
        "hide": 0,
        "options": [],
        "refresh": 1,
        "regex": "",
    }
    info = series(m.model_info)
    return [
        datasource,
        _query_variable("instance", "instance", info),
        _query_variable("shard", "shard", f'{info}{{instance=~"$instance"}}'),
    ]
