"""What the deploy files promise each other: paths, metric names, PromQL expressions."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry, generate_latest

from monitor.dashboard import build_dashboard, panel_queries
from monitor.service.metrics import Metrics

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
DASHBOARD_JSON = DEPLOY / "grafana" / "dashboards" / "vitals-monitor.json"
PROMETHEUS_YML = DEPLOY / "prometheus" / "prometheus.yml"
RULES_YML = DEPLOY / "prometheus" / "rules" / "vitals-monitor.rules.yml"
#: The shard rules (docs/scale-out.md), beside the daemon's own.
SHARD_RULES_YML = DEPLOY / "prometheus" / "rules" / "vitals-monitor-shards.rules.yml"
#: Every rules file that prometheus.yml loads (`rules/*.rules.yml`).
RULE_FILES = sorted((DEPLOY / "prometheus" / "rules").glob("*.rules.yml"))
ACL = DEPLOY / "mosquitto" / "acl"

#: Grafana's built-in interval variables, replaced by a window Prometheus understands.
GRAFANA_VARIABLES = ("$__rate_interval", "$__interval", "$__range")
#: The dashboard's own query variables, replaced by what "All" sends: `.*`.
DASHBOARD_VARIABLES = ("$instance", "$shard")
#: Every metric of the daemon is prefixed `monitor_`; `up` is Prometheus's own.
_SERIES = re.compile(r"\bmonitor_[a-z0-9_]+\b")


def load_yaml(path: Path) -> Any:
    """Parse a YAML file of the deploy folder."""
    return yaml.safe_load(path.read_text())


def exported_series() -> set[str]:
    """Every series name a fresh `Metrics` registry exposes, as Prometheus stores it.

    Histograms expose `_bucket`, `_sum` and `_count`; counters `_total` (and `_created`).
    Labelled metrics without children print only their `# TYPE` line, so names are read there.
    """
    text = generate_latest(Metrics.create(CollectorRegistry()).registry).decode()
    names: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            if kind == "histogram":
                names |= {f"{name}_bucket", f"{name}_sum", f"{name}_count"}
            else:
                names.add(name)
        elif line and not line.startswith("#"):
            names.add(re.split(r"[{ ]", line, maxsplit=1)[0])
    return names


def series_in(expr: str) -> set[str]:
    """The `monitor_*` series names an expression reads."""
    return set(_SERIES.findall(expr))


def for_prometheus(expr: str, window: str, **picked: str) -> str:
    """Replace Grafana's interval variables with a fixed window, e.g. `10s`, and the
    dashboard's variables with the regex picked for each (`shard="1"`; "All", `.*`, if none)."""
    for variable in GRAFANA_VARIABLES:
        expr = expr.replace(variable, window)
    for variable in DASHBOARD_VARIABLES:
        expr = expr.replace(variable, picked.get(variable.removeprefix("$"), ".*"))
    return expr


def dashboard_expressions() -> list[tuple[str, str]]:
    """(panel title, expression) for every target of the generated dashboard."""
    return panel_queries(build_dashboard())


def rule_expressions() -> list[tuple[str, str]]:
    """(alert name, expression) for every rule of the deploy rules files."""
    groups = [group for path in RULE_FILES for group in load_yaml(path)["groups"]]
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for group in groups
        for rule in group["rules"]
    ]
