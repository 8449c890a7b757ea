"""A real Prometheus scrapes two daemons as shards 0 and 1 and evaluates the dashboard and
the rules: every panel returns data, the per-shard panels show both shards, and picking a
shard in the dashboard's variable narrows the panels to it."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from monitor.dashboard import build_dashboard
from tests.deploy.contract import (
    RULE_FILES,
    dashboard_expressions,
    for_prometheus,
    rule_expressions,
)
from tests.deploy.shard_scrape import ShardScrape
from tests.support.prometheus import Prometheus, PrometheusQueryError

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="make system-deps"),
]

#: With a 1 s scrape, a 10 s window holds enough samples for rate() and increase().
WINDOW = "10s"


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, shard_targets: list[str]
) -> Iterator[Prometheus]:
    """Prometheus scraping both daemons every second as shards, with the deploy rules loaded.

    One server for the module: starting it and waiting for scrapes is the slow part.
    """
    workdir = tmp_path_factory.mktemp("prometheus")
    server = ShardScrape(
        workdir=workdir, target=shard_targets[0], shards=shard_targets, rule_files=RULE_FILES
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


def _finite_values(result: list[dict[str, Any]]) -> list[float]:
    values = [float(sample["value"][1]) for sample in result]
    return [v for v in values if math.isfinite(v)]


def _wait_for_panels(server: Prometheus, timeout: float = 30.0) -> dict[str, list[float]]:
    """Query every panel until each returns a finite value or `timeout` passes."""
    deadline = time.monotonic() + timeout
    while True:
        values = {
            expr: _finite_values(server.query(for_prometheus(expr, WINDOW)))
            for _, expr in dashboard_expressions()
        }
        if all(values.values()) or time.monotonic() > deadline:
            return values
        time.sleep(0.5)


def _shards(result: list[dict[str, Any]]) -> set[str]:
    return {sample["metric"].get("shard", "") for sample in result}


def test_targets_are_scraped_as_the_deploy_job(prometheus: Prometheus) -> None:
    """Prometheus scrapes both shards under job `vitals-monitor`, so `up` reads 1 for each."""
    _wait_for_panels(prometheus)
    up = prometheus.query('up{job="vitals-monitor"}')
    assert sorted((s["metric"]["shard"], s["value"][1]) for s in up) == [("0", "1"), ("1", "1")]
    assert prometheus.query('up{job="vitals-monitor"} == 0') == []


def test_every_panel_returns_data(prometheus: Prometheus, live_model: Path) -> None:
    """Each dashboard expression evaluates without error and returns at least one finite value."""
    values = _wait_for_panels(prometheus)
    empty = [expr for expr, found in values.items() if not found]
    assert empty == []
    infos = prometheus.query("monitor_model_info")
    version = json.loads((live_model / "card.json").read_text())["model_version"]
    assert [(i["metric"]["version"], i["metric"]["device"]) for i in infos] == [
        (version, "cpu")
    ] * 2


def test_per_shard_panels_show_each_shard(prometheus: Prometheus) -> None:
    """Every `by (shard)` panel query returns one series per scraped shard."""
    _wait_for_panels(prometheus)
    per_shard = [e for _, e in dashboard_expressions() if "by (shard)" in e]
    assert per_shard
    shown = {e: _shards(prometheus.query(for_prometheus(e, WINDOW))) for e in per_shard}
    assert {e: s for e, s in shown.items() if s != {"0", "1"}} == {}


def test_variable_queries_list_instances_and_shards(prometheus: Prometheus) -> None:
    """The `instance` and `shard` variables' label_values queries find both daemons."""
    variables = {v["name"]: v for v in build_dashboard()["templating"]["list"]}
    for name, expected in (("instance", 2), ("shard", 2)):
        series_expr = variables[name]["definition"].removeprefix("label_values(")
        series_expr = series_expr.rsplit(",", 1)[0]
        found = prometheus.query(f"group by ({name}) ({for_prometheus(series_expr, WINDOW)})")
        assert len({s["metric"][name] for s in found}) == expected


def test_picking_a_shard_narrows_the_panels(prometheus: Prometheus) -> None:
    """With shard 1 picked, the totals count one daemon: half of both shards' sum."""
    _wait_for_panels(prometheus)
    (title, expr) = next(
        (t, e) for t, e in dashboard_expressions() if e.startswith("sum(monitor_active_patients")
    )
    both = _finite_values(prometheus.query(for_prometheus(expr, WINDOW)))
    one = _finite_values(prometheus.query(for_prometheus(expr, WINDOW, shard="1")))
    per_shard = prometheus.query(
        for_prometheus(expr.replace("sum(", "sum by (shard) (", 1), WINDOW, shard="1")
    )
    assert _shards(per_shard) == {"1"}, title
    assert 0 < one[0] < both[0]


def test_the_real_daemon_scores_and_alerts(prometheus: Prometheus) -> None:
    """Through Prometheus, the daemon is seen scoring samples and raising physiological alerts."""
    deadline = time.monotonic() + 40
    while True:
        scored = _finite_values(prometheus.query('monitor_messages_total{outcome="scored"}'))
        alerts = _finite_values(prometheus.query("sum(monitor_alerts_total)"))
        if (scored and alerts and scored[0] > 0 and alerts[0] > 0) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert scored[0] > 0
    assert alerts[0] > 0


def test_every_rule_evaluates(prometheus: Prometheus) -> None:
    """Each rule expression is accepted as a query, and the loaded rules evaluate healthily."""
    _wait_for_panels(prometheus)
    for _, expr in rule_expressions():
        prometheus.query(expr)  # raises PrometheusQueryError, naming the expression
    deadline = time.monotonic() + 10
    while True:
        rules = prometheus.rules()
        evaluated = [r for r in rules if not r["lastEvaluation"].startswith("0001-")]
        if len(evaluated) == len(rule_expressions()) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert [(r["name"], r["health"], r["lastError"]) for r in rules if r["health"] != "ok"] == []
    assert sorted(r["name"] for r in evaluated) == sorted(n for n, _ in rule_expressions())
    # A healthy daemon: connected and scraped, so neither of these is pending.
    firing = {r["name"] for r in rules if r["state"] != "inactive"}
    assert firing.isdisjoint({"VitalsMonitorDown", "VitalsMonitorBrokerDisconnected"})


def test_a_bad_expression_is_reported(prometheus: Prometheus) -> None:
    """A malformed query raises PrometheusQueryError instead of returning nothing."""
    with pytest.raises(PrometheusQueryError, match="parse error"):
        prometheus.query("sum by (le (rate(monitor_batch_size_bucket[10s]))")
