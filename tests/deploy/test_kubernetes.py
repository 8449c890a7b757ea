"""deploy/kubernetes: schema-valid manifests whose parts agree with each other.

No cluster runs here: the manifests are validated offline with `kubernetes-validate --strict`
(it carries the API schemas) and cross-checked; test_nats_config.py runs the NATS config.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from monitor.settings import NatsSettings
from tests.deploy import kube
from tests.deploy.contract import DEPLOY

VALIDATE = Path(sys.executable).with_name("kubernetes-validate")
#: The oldest Kubernetes the manifests support: the pod-index label is there from 1.28.
OLDEST = "1.28.0"


@pytest.mark.skipif(not VALIDATE.exists(), reason="kubernetes-validate not installed")
@pytest.mark.parametrize("version", [OLDEST, "1.37.0"])
def test_manifests_validate_strictly(version: str) -> None:
    """`kubernetes-validate --strict` accepts every resource: no unknown or misplaced field."""
    done = subprocess.run(
        [str(VALIDATE), "--strict", "-k", version, *map(str, kube.MANIFESTS)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    passed = re.findall(r"passed for resource (\S+)", done.stdout)
    assert sorted(passed) == sorted(f"{k.lower()}/{n}" for k, n in kube.resources())


def test_pod_ordinal_is_the_shard_index_and_replicas_the_count() -> None:
    """Shard K of N: K from the pod's index label, N equal to replicas and dividing 64."""
    monitor = kube.resources()[("StatefulSet", "vitals-monitor")]
    env = kube.env(kube.container("StatefulSet", "vitals-monitor"))
    assert env["MONITOR_SHARD__INDEX"] == {
        "fieldRef": {"fieldPath": "metadata.labels['apps.kubernetes.io/pod-index']"}
    }
    replicas = monitor["spec"]["replicas"]
    assert int(env["MONITOR_SHARD__COUNT"]) == replicas
    (partitions,) = re.findall(r"partition\((\d+),1\)", kube.nats_conf())
    assert env["MONITOR_SHARD__PARTITIONS"] == partitions
    assert int(partitions) % replicas == 0
    assert monitor["spec"]["podManagementPolicy"] == "Parallel"


def test_headless_service_scrapes_every_pod() -> None:
    """The monitor Service is headless, publishes not-ready pods and names the metrics port."""
    resources = kube.resources()
    service = resources[("Service", "vitals-monitor")]["spec"]
    monitor = resources[("StatefulSet", "vitals-monitor")]["spec"]
    assert service["clusterIP"] == "None"
    assert service["publishNotReadyAddresses"] is True
    assert monitor["serviceName"] == "vitals-monitor"
    assert service["selector"].items() <= monitor["template"]["metadata"]["labels"].items()
    (port,) = service["ports"]
    container = kube.container("StatefulSet", "vitals-monitor")
    (container_port,) = container["ports"]
    assert (port["name"], port["targetPort"]) == ("metrics", container_port["name"])
    env = kube.env(container)
    assert int(env["MONITOR_METRICS__PORT"]) == container_port["containerPort"] == port["port"]
    assert env["MONITOR_METRICS__HOST"] == "0.0.0.0"


def test_probes_use_readyz_and_healthz() -> None:
    """Readiness on /readyz, liveness (and startup, for window recovery) on /healthz."""
    container = kube.container("StatefulSet", "vitals-monitor")
    probes = {
        kind: container[kind]["httpGet"]
        for kind in ("readinessProbe", "livenessProbe", "startupProbe")
    }
    assert probes == {
        "readinessProbe": {"path": "/readyz", "port": "metrics"},
        "livenessProbe": {"path": "/healthz", "port": "metrics"},
        "startupProbe": {"path": "/healthz", "port": "metrics"},
    }


def test_disruption_budgets_and_anti_affinity_select_their_pods() -> None:
    """Each StatefulSet has a PDB (one pod down at most) and anti-affinity over its own pods."""
    resources = kube.resources()
    for name in ("vitals-monitor", "vitals-nats"):
        labels = resources[("StatefulSet", name)]["spec"]["template"]["metadata"]["labels"]
        pdb = resources[("PodDisruptionBudget", name)]["spec"]
        assert pdb["maxUnavailable"] == 1
        assert pdb["selector"]["matchLabels"].items() <= labels.items()
        affinity = resources[("StatefulSet", name)]["spec"]["template"]["spec"]["affinity"]
        terms = json.dumps(affinity["podAntiAffinity"])
        assert '"topologyKey": "kubernetes.io/hostname"' in terms
        assert json.dumps({"app.kubernetes.io/name": name}) in terms
    # NATS must keep a quorum: its three servers never share a node.
    nats_affinity = resources[("StatefulSet", "vitals-nats")]["spec"]["template"]["spec"]
    assert (
        "requiredDuringSchedulingIgnoredDuringExecution"
        in (nats_affinity["affinity"]["podAntiAffinity"])
    )


def test_every_container_has_limits_and_runs_unprivileged() -> None:
    """Requests and limits for CPU and memory; no privilege escalation; read-only root."""
    for (kind, name), resource in kube.resources().items():
        if kind not in ("StatefulSet", "Job"):
            continue
        pod = resource["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True, name
        for container in pod["containers"]:
            for bound in ("requests", "limits"):
                assert set(container["resources"][bound]) == {"cpu", "memory"}, name
            security = container["securityContext"]
            assert security["allowPrivilegeEscalation"] is False, name
            assert security["readOnlyRootFilesystem"] is True, name


def test_nats_cluster_of_three_with_mqtt_jetstream_and_the_mapping() -> None:
    """3 servers, routes to each by its stable name, MQTT, JetStream, server_name, mapping."""
    nats = kube.resources()[("StatefulSet", "vitals-nats")]["spec"]
    conf = kube.nats_conf()
    assert nats["replicas"] == 3
    routes = re.findall(r"nats://([a-z0-9-]+)\.([a-z0-9-]+):6222", conf)
    assert routes == [(f"vitals-nats-{k}", nats["serviceName"]) for k in range(3)]
    assert "server_name: $POD_NAME" in conf
    assert re.search(r"^mqtt \{\n  listen: 0\.0\.0\.0:1883\n\}", conf, re.M)
    assert re.search(r"^jetstream \{\n  store_dir: /data/jetstream", conf, re.M)
    mapping = 'mappings = {\n  "vitals.*": "vitals.{{partition(64,1)}}.{{wildcard(1)}}"\n}'
    assert mapping in conf


def test_stream_keeps_what_the_mapping_produces() -> None:
    """The stream's subjects are the mapped ones, with a per-patient ring of >= one window."""
    stream = json.loads(
        kube.resources()[("ConfigMap", "vitals-stream")]["data"]["vitals-stream.json"]
    )
    assert stream["subjects"] == ["vitals.*.*"]
    assert stream["max_msgs_per_subject"] >= 120  # the shipped model's window, in samples
    assert stream["discard"] == "old"
    assert (
        stream["num_replicas"]
        <= kube.resources()[("StatefulSet", "vitals-nats")]["spec"]["replicas"]
    )
    script = kube.container("Job", "vitals-stream")["args"][0]
    assert "for name in VITALS ALERTS" in script
    assert 'nats stream add "$name" --config "$config"' in script


def test_alerts_stream_is_the_one_a_recovering_shard_reads() -> None:
    """The ALERTS stream keeps what the shards publish (alerts/<id> over MQTT is alerts.<id>),
    under the name the daemon's `nats.alerts_stream` reads by default; the streams' config
    keys are the names the Job derives from the stream names."""
    data = kube.resources()[("ConfigMap", "vitals-stream")]["data"]
    alerts = json.loads(data["alerts-stream.json"])
    vitals = json.loads(data["vitals-stream.json"])
    nats = NatsSettings()
    assert (vitals["name"], alerts["name"]) == (nats.stream, nats.alerts_stream)
    assert alerts["subjects"] == ["alerts.>"]


def test_kubernetes_scrape_labels_each_pod_with_its_shard(tmp_path: Path) -> None:
    """prometheus-kubernetes.yml keeps the monitor Service's metrics port and sets `shard`
    from the pod index; promtool accepts it (with a static target in place of the Kubernetes
    discovery, which Debian's promtool is built without)."""
    path = DEPLOY / "prometheus" / "prometheus-kubernetes.yml"
    config = yaml.safe_load(path.read_text())
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    relabel = jobs["vitals-monitor"]["relabel_configs"]
    service = kube.resources()[("Service", "vitals-monitor")]
    (port,) = service["spec"]["ports"]
    keep = next(r for r in relabel if r.get("action") == "keep")
    assert keep["regex"] == f"{service['metadata']['name']};{port['name']}"
    targets = {r["target_label"]: r["source_labels"] for r in relabel if "target_label" in r}
    assert targets["shard"] == ["__meta_kubernetes_pod_label_apps_kubernetes_io_pod_index"]
    if shutil.which("promtool") is None:
        pytest.skip("promtool not installed")
    del jobs["vitals-monitor"]["kubernetes_sd_configs"]
    jobs["vitals-monitor"]["static_configs"] = [{"targets": ["127.0.0.1:9108"]}]
    config["rule_files"] = [str(path.parent / pattern) for pattern in config["rule_files"]]
    copy = tmp_path / "prometheus.yml"
    copy.write_text(yaml.safe_dump(config))
    done = subprocess.run(
        ["promtool", "check", "config", str(copy)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_scale_out_doc_quotes_the_deployed_mapping_and_files() -> None:
    """docs/scale-out.md quotes the ConfigMap's mapping and describes each manifest file."""
    doc = (DEPLOY.parent / "docs" / "scale-out.md").read_text()
    (mapping,) = re.findall(r'"vitals\.\*": "[^"]+"', kube.nats_conf())
    assert f"mappings = {{ {mapping} }}" in doc
    assert [p.name for p in kube.MANIFESTS if f"`{p.name}`" not in doc] == []
