"""The Grafana dashboard: generated from the metrics registry, committed, provisioned."""

from __future__ import annotations

import dataclasses
import json

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from monitor.dashboard import build_dashboard, render, series
from monitor.service.metrics import Metrics
from tests.deploy.contract import (
    DASHBOARD_JSON,
    DEPLOY,
    dashboard_expressions,
    exported_series,
    load_yaml,
    series_in,
)


def test_committed_dashboard_is_the_generated_one() -> None:
    """The committed JSON is byte-for-byte what `python -m monitor.dashboard` writes."""
    regenerate = "python -m monitor.dashboard --out deploy/grafana/dashboards/vitals-monitor.json"
    assert DASHBOARD_JSON.read_text() == render(build_dashboard()), regenerate


def test_every_panel_series_is_exported() -> None:
    """Each series a panel queries is in the exposition of a fresh `Metrics` registry."""
    exported = exported_series()
    missing = {
        (title, name)
        for title, expr in dashboard_expressions()
        for name in series_in(expr) - exported
    }
    assert missing == set()


def test_panels_cover_the_required_views() -> None:
    """Messages, both latencies, errors, alerts, patients, batches, MQTT and model are shown."""
    used = set().union(*(series_in(expr) for _, expr in dashboard_expressions()))
    required = {
        "monitor_messages_total",
        "monitor_end_to_end_latency_seconds_bucket",
        "monitor_inference_latency_seconds_bucket",
        "monitor_prediction_error_bucket",
        "monitor_alerts_total",
        "monitor_active_patients",
        "monitor_batch_size_bucket",
        "monitor_batch_size_sum",
        "monitor_mqtt_connected",
        "monitor_mqtt_reconnects_total",
        "monitor_model_info",
    }
    assert required - used == set()
    latency = [e for _, e in dashboard_expressions() if "end_to_end_latency" in e]
    assert [e.split(",")[0] for e in latency] == [
        "histogram_quantile(0.5",
        "histogram_quantile(0.95",
        "histogram_quantile(0.99",
        "histogram_quantile(0.99",  # by shard
    ]


def test_renamed_metric_changes_the_dashboard() -> None:
    """A metric registered under another name shows up in the generated panels."""
    metrics = Metrics.create(CollectorRegistry())
    renamed = dataclasses.replace(
        metrics,
        messages=Counter("monitor_msgs", "renamed", ["outcome"], registry=CollectorRegistry()),
    )
    text = render(build_dashboard(renamed))
    assert "monitor_msgs_total" in text
    assert "monitor_messages_total" not in text
    assert text != DASHBOARD_JSON.read_text()


def test_series_names_follow_prometheus_conventions() -> None:
    """Counters get `_total`, gauges keep their name, histograms need an explicit suffix."""
    r = CollectorRegistry()
    assert series(Counter("c", "c", registry=r)) == "c_total"
    assert series(Gauge("g", "g", registry=r)) == "g"
    histogram = Histogram("h", "h", registry=r)
    assert series(histogram, "_bucket") == "h_bucket"
    with pytest.raises(ValueError, match="h needs a _bucket/_sum/_count suffix"):
        series(histogram)


def test_panels_read_the_datasource_variable() -> None:
    """Every panel and target reads `${datasource}`; no datasource uid is hard-coded.

    So the dashboard imports into an existing Grafana whatever its Prometheus is called; the
    provisioned stack's datasource is a Prometheus, which the variable offers.
    """
    dashboard = json.loads(DASHBOARD_JSON.read_text())
    sources = [p["datasource"] for p in dashboard["panels"]] + [
        t["datasource"] for p in dashboard["panels"] for t in p["targets"]
    ]
    assert {(s["type"], s["uid"]) for s in sources} == {("prometheus", "${datasource}")}
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert (variables["datasource"]["type"], variables["datasource"]["query"]) == (
        "datasource",
        "prometheus",
    )
    provisioned = load_yaml(DEPLOY / "grafana/provisioning/datasources/prometheus.yml")
    (source,) = provisioned["datasources"]
    assert source["type"] == "prometheus"
    assert source["uid"] not in DASHBOARD_JSON.read_text()


def test_every_query_is_scoped_by_instance_and_shard() -> None:
    """Each `monitor_*` selector carries the instance and shard variables."""
    unscoped = [
        (title, expr)
        for title, expr in dashboard_expressions()
        for name in series_in(expr)
        if expr.count(name + '{instance=~"$instance", shard=~"$shard"}') != expr.count(name)
    ]
    assert unscoped == []


def test_instance_and_shard_variables_are_multi_value_queries() -> None:
    """`instance` and `shard` list label values of an exported series; "All" sends `.*`."""
    variables = {v["name"]: v for v in build_dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "instance", "shard"]
    for name in ("instance", "shard"):
        variable = variables[name]
        assert (variable["multi"], variable["includeAll"], variable["allValue"]) == (
            True,
            True,
            ".*",
        )
        assert variable["datasource"]["uid"] == "${datasource}"
        assert variable["definition"].startswith("label_values(monitor_model_info")
        assert variable["definition"].endswith(f", {name})")
        assert series_in(variable["definition"]) <= exported_series()
    assert '{instance=~"$instance"}' in variables["shard"]["definition"]


def test_panels_aggregate_across_shards() -> None:
    """Totals are sums over shards, and the per-shard views group `by (shard)`."""
    expressions = [expr for _, expr in dashboard_expressions()]
    per_shard = [e for e in expressions if "by (shard)" in e or "by (le, shard)" in e]
    assert len(per_shard) >= 5  # throughput, latency, patients, connection, reconnects
    bare = [
        e
        for e in expressions
        if not e.startswith(("sum", "min", "count", "histogram_quantile", "avg", "max"))
    ]
    assert bare == []


def test_panels_have_unique_ids_and_do_not_overlap() -> None:
    """Panel ids are unique and no two panels share a grid cell."""
    panels = json.loads(DASHBOARD_JSON.read_text())["panels"]
    assert len({p["id"] for p in panels}) == len(panels)
    cells = [
        (x, y)
        for p in panels
        for x in range(p["gridPos"]["x"], p["gridPos"]["x"] + p["gridPos"]["w"])
        for y in range(p["gridPos"]["y"], p["gridPos"]["y"] + p["gridPos"]["h"])
    ]
    assert len(cells) == len(set(cells))
    assert max(x for x, _ in cells) == 23


def test_per_vital_panels_name_no_vital() -> None:
    """Per-vital panels group by the `vital` label: a registered signal gets its own series.

    No query names a built-in vital, so an ECG or a pressure registered by a user shows up
    in 'Prediction error by vital' and 'Alerts raised by vital' without editing the file.
    """
    from monitor.core.vitals import VITALS

    expressions = [expr for _, expr in dashboard_expressions()]
    assert [e for e in expressions if any(name in e for name in VITALS)] == []
    per_vital = [e for e in expressions if "vital" in e]
    assert len(per_vital) == 3  # error p95, error mean, alerts: each summed by vital
    assert all("by (le, vital)" in e or "by (vital" in e for e in per_vital)


def test_import_into_an_existing_grafana_is_documented() -> None:
    """docs/deploy.md gives the import steps: the file, the datasource pick, the API call."""
    doc = (DEPLOY.parent / "docs" / "deploy.md").read_text()
    section = doc[doc.index("### Importing the dashboard into an existing Grafana") :]
    for needle in (
        "deploy/grafana/dashboards/vitals-monitor.json",
        "**Data source**",
        "/api/dashboards/db",
    ):
        assert needle in section, needle
    assert json.loads(DASHBOARD_JSON.read_text()).get("id") is None  # importable as new
