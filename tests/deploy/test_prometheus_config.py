"""Prometheus and Alertmanager configuration: promtool checks and cross-file consistency."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.contract import (
    DEPLOY,
    PROMETHEUS_YML,
    RULE_FILES,
    RULES_YML,
    SHARD_RULES_YML,
    exported_series,
    load_yaml,
    rule_expressions,
    series_in,
)

RULE_TESTS = [
    Path(__file__).with_name("vitals-monitor.rules.test.yml"),
    Path(__file__).with_name("vitals-monitor-shards.rules.test.yml"),
]

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None, reason="promtool not installed (make system-deps)"
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["promtool", *args], capture_output=True, text=True, timeout=60, check=False
    )


@needs_promtool
def test_promtool_accepts_the_config_and_finds_the_rules() -> None:
    """`promtool check config` passes and resolves the rule_files glob to the rules file."""
    done = _promtool("check", "config", str(PROMETHEUS_YML))
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"SUCCESS: {len(RULE_FILES)} rule files found" in done.stdout
    (pattern,) = load_yaml(PROMETHEUS_YML)["rule_files"]
    assert sorted(PROMETHEUS_YML.parent.glob(pattern)) == RULE_FILES
    assert {RULES_YML, SHARD_RULES_YML} <= set(RULE_FILES)


@needs_promtool
def test_promtool_accepts_the_rules() -> None:
    """`promtool check rules` passes on the deploy rules files and counts every rule."""
    done = _promtool("check", "rules", *map(str, RULE_FILES))
    assert done.returncode == 0, done.stdout + done.stderr
    counts = [int(n) for n in re.findall(r"SUCCESS: (\d+) rules found", done.stdout)]
    assert sum(counts) == len(rule_expressions())


@needs_promtool
def test_rules_fire_as_specified() -> None:
    """`promtool test rules`: each alert fires on its input series, after its `for`, not before."""
    done = _promtool("test", "rules", *map(str, RULE_TESTS))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_required_alerts_exist() -> None:
    """Down, not ready, broker lost, latency, shedding and alert storm each have a rule."""
    names = {name for name, _ in rule_expressions()}
    assert {
        "VitalsMonitorDown",
        "VitalsMonitorNotReady",
        "VitalsMonitorBrokerDisconnected",
        "VitalsMonitorLatencyHigh",
        "VitalsMonitorSheddingSamples",
        "VitalsMonitorAlertStorm",
    } <= names


def test_rule_series_are_exported() -> None:
    """Every `monitor_*` series a rule reads is in a fresh `Metrics` registry's exposition."""
    exported = exported_series()
    missing = {(name, s) for name, expr in rule_expressions() for s in series_in(expr) - exported}
    assert missing == set()


def test_down_rule_selects_the_scrape_job() -> None:
    """The daemon-down rule selects the job name that prometheus.yml scrapes the daemon as."""
    jobs = {job["job_name"]: job for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]}
    expr = dict(rule_expressions())["VitalsMonitorDown"]
    assert expr == 'up{job="vitals-monitor"} == 0'
    (static,) = jobs["vitals-monitor"]["static_configs"]
    assert static["targets"] == ["monitor:9108"]


def test_latency_rule_uses_the_50ms_target() -> None:
    """The latency rule compares the p99 of the end-to-end histogram with 0.05 s."""
    expr = " ".join(dict(rule_expressions())["VitalsMonitorLatencyHigh"].split())
    assert expr.startswith("histogram_quantile(0.99,")
    assert "monitor_end_to_end_latency_seconds_bucket" in expr
    assert expr.endswith("> 0.05")


def test_alertmanager_routes_to_defined_receivers() -> None:
    """Every route of alertmanager.yml names a receiver that the file defines."""
    config = load_yaml(DEPLOY / "alertmanager" / "alertmanager.yml")
    receivers = {r["name"] for r in config["receivers"]}
    routes = [config["route"], *config["route"].get("routes", [])]
    assert {route["receiver"] for route in routes} <= receivers
    assert len(receivers) == 2
    (target,) = load_yaml(PROMETHEUS_YML)["alerting"]["alertmanagers"][0]["static_configs"]
    assert target["targets"] == ["alertmanager:9093"]


def test_shard_rules_cover_down_not_ready_and_missing() -> None:
    """A shard that is down, not ready or gone has a rule, aggregated `by (shard)`."""
    shard_rules = {
        rule["alert"]: " ".join(rule["expr"].split())
        for group in load_yaml(SHARD_RULES_YML)["groups"]
        for rule in group["rules"]
    }
    assert set(shard_rules) == {
        "VitalsMonitorShardDown",
        "VitalsMonitorShardNotReady",
        "VitalsMonitorShardMissing",
    }
    assert shard_rules["VitalsMonitorShardDown"] == (
        'max by (shard) (up{job="vitals-monitor", shard!=""}) == 0'
    )
    assert shard_rules["VitalsMonitorShardNotReady"].startswith("max by (shard) (monitor_ready")
    assert all("by (shard)" in expr for expr in shard_rules.values())
