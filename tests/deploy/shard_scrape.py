"""A test Prometheus that scrapes several daemons as the shards of one job.

Each target gets a `shard` label from the scrape, as the Kubernetes scrape configuration
gives each pod its index (deploy/kubernetes/prometheus-scrape.yml), so the dashboard's
per-shard panels and the shard rules see the label on every series, `up` included.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.support.prometheus import Prometheus


@dataclass
class ShardScrape(Prometheus):
    """Prometheus scraping `shards[k]` with the target label `shard="k"`, all in one job.

    Attributes:
        shards: The daemons' `host:port`, in shard order (`target` is ignored).
    """

    shards: Sequence[str] = ()

    def _static_configs(self) -> list[dict[str, Any]]:
        """One target per shard, labelled with its index."""
        return [
            {"targets": [target], "labels": {"shard": str(k)}}
            for k, target in enumerate(self.shards)
        ]
