"""A real Prometheus scrapes the daemon's /metrics and evaluates the dashboard and the rules."""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.contract import (
    RULES_YML,
    dashboard_expressions,
    for_prometheus,
    rule_expressions,
)
from tests.support.prometheus import Prometheus, PrometheusQueryError

pytestmark = [
    pytest.mark.prometheus,
    pytest.mark.skipif(shutil.which("prometheus") is None, reason="make system-deps"),
]

#: With a 1 s scrape, a 10 s window holds enough samples for rate() and increase().
WINDOW = "10s"


@pytest.fixture(scope="module")
def prometheus(
    tmp_path_factory: pytest.TempPathFactory, metrics_target: str
) -> Iterator[Prometheus]:
    """Prometheus scraping `metrics_target` every second with the deploy rules loaded.

    One server for the module: starting it and waiting for scrapes is the slow part.
    """
    workdir = tmp_path_factory.mktemp("prometheus")
    server = Prometheus(workdir=workdir, target=metrics_target, rule_files=[RULES_YML])
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


def test_target_is_scraped_as_the_deploy_job(prometheus: Prometheus) -> None:
    """Prometheus scrapes the target under job `vitals-monitor`, so `up` reads 1."""
    _wait_for_panels(prometheus)
    (up,) = prometheus.query('up{job="vitals-monitor"}')
    assert up["value"][1] == "1"
    assert prometheus.query('up{job="vitals-monitor"} == 0') == []


def test_every_panel_returns_data(prometheus: Prometheus, live_model: Path) -> None:
    """Each dashboard expression evaluates without error and returns at least one finite value."""
    values = _wait_for_panels(prometheus)
    empty = [expr for expr, found in values.items() if not found]
    assert empty == []
    (info,) = prometheus.query("monitor_model_info")
    version = json.loads((live_model / "card.json").read_text())["model_version"]
    assert (info["metric"]["version"], info["metric"]["device"]) == (version, "cpu")


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
