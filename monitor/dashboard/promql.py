"""PromQL for the dashboard: series names read from the metrics, scoped by its variables."""

from __future__ import annotations

from typing import Any

from prometheus_client.registry import Collector

#: Every panel reads the datasource chosen in this dashboard variable.
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
#: Series come from the daemons picked in the `instance` and `shard` variables ("All": `.*`).
SCOPE = '{instance=~"$instance", shard=~"$shard"}'
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


def scoped(collector: Collector, suffix: str = "") -> str:
    """A collector's series, restricted to the instances and shards picked in the dashboard."""
    return series(collector, suffix) + SCOPE


def quantile(q: float, histogram: Collector, by: str = "") -> str:
    """PromQL for the q-quantile of a histogram over the rate window, optionally per label."""
    labels = f"le, {by}" if by else "le"
    bucket = scoped(histogram, "_bucket")
    return f"histogram_quantile({q}, sum by ({labels}) (rate({bucket}[{RATE}])))"


def mean(histogram: Collector, by: str = "") -> str:
    """PromQL for the mean observation of a histogram over the rate window."""
    grouping = f" by ({by})" if by else ""
    total, count = scoped(histogram, "_sum"), scoped(histogram, "_count")
    return f"sum{grouping} (rate({total}[{RATE}])) / sum{grouping} (rate({count}[{RATE}]))"
