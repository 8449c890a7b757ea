"""A test Prometheus that scrapes several daemons as the shards of one job.

Each target gets a `shard` label from the scrape, as the Kubernetes scrape configuration
gives each pod its index (deploy/kubernetes/prometheus-scrape.yml), so the dashboard's
per-shard panels and the shard rules see the label on every series, `up` included.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.support.prometheus import Prometheus


@dataclass
class ShardScrape(Prometheus):
    """Prometheus scraping `shards[k]` with the target label `shard="k"`, all in one job.

    Attributes:
        shards: The daemons' `host:port`, in shard order (`target` is ignored).
    """

    shards: Sequence[str] = ()

    def _write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        config = {
            "global": {
                "scrape_interval": self.scrape_interval,
                "evaluation_interval": self.scrape_interval,
            },
            "rule_files": [str(p) for p in self.rule_files],
            "scrape_configs": [
                {
                    "job_name": self.job_name,
                    "static_configs": [
                        {"targets": [target], "labels": {"shard": str(k)}}
                        for k, target in enumerate(self.shards)
                    ],
                }
            ],
        }
        path = self.workdir / "prometheus.yml"
        path.write_text(json.dumps(config, indent=2))  # JSON is YAML
        return path
