"""The Kubernetes manifests of deploy/kubernetes, read once for the deploy tests."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from tests.deploy.contract import DEPLOY

KUBERNETES = DEPLOY / "kubernetes"
MANIFESTS: list[Path] = sorted(KUBERNETES.glob("*.yaml"))
#: The environment nats.conf reads (the pod's name and the Secret's passwords).
NATS_ENV = {
    "POD_NAME": "vitals-nats-0",
    "MONITOR_NATS_PASSWORD": "monitor-secret",
    "DEVICE_NATS_PASSWORD": "device-secret",
}


def resources() -> dict[tuple[str, str], dict[str, Any]]:
    """Every resource of the folder, by (kind, name)."""
    found = {}
    for path in MANIFESTS:
        for doc in yaml.safe_load_all(path.read_text()):
            found[(doc["kind"], doc["metadata"]["name"])] = doc
    return found


def container(kind: str, name: str) -> dict[str, Any]:
    """The one container of a workload's pod template."""
    (only,) = resources()[(kind, name)]["spec"]["template"]["spec"]["containers"]
    return dict(only)


def env(of: dict[str, Any]) -> dict[str, Any]:
    """A container's environment: name -> value, or its `valueFrom` source."""
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in of["env"]}


def nats_conf() -> str:
    """The NATS server configuration from its ConfigMap."""
    return str(resources()[("ConfigMap", "vitals-nats-config")]["data"]["nats.conf"])
