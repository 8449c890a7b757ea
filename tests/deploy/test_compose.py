"""The compose stack and its image, checked statically (no Docker engine runs here)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from monitor.settings import Settings
from tests.deploy.contract import DEPLOY, PROMETHEUS_YML, REPO, load_yaml

COMPOSE = DEPLOY / "compose.yaml"
COMPOSE_GPU = DEPLOY / "compose.gpu.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
SERVICES = {"mosquitto", "monitor", "simulator", "prometheus", "alertmanager", "grafana"}


def _services(path: Path) -> dict[str, Any]:
    services: dict[str, Any] = load_yaml(path)["services"]
    return services


def _bind_mounts(service: dict[str, Any]) -> list[tuple[str, str]]:
    """(host path, container path) of every bind mount in short syntax."""
    mounts = []
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith((".", "/")):
            mounts.append((source, target))
    return mounts


def _depends_on(service: dict[str, Any]) -> set[str]:
    return set(service.get("depends_on", []))


def _dockerfile_stages() -> list[list[str]]:
    """The Dockerfile's instructions (continuation lines joined), split by FROM."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith("#")]
    stages: list[list[str]] = [[]]
    for line in lines:
        if line.startswith("FROM "):
            stages.append([])
        stages[-1].append(line)
    return stages


def test_stack_has_every_service_with_an_image() -> None:
    """The six services of the stack are there and each has an image or a build."""
    services = _services(COMPOSE)
    assert set(services) >= SERVICES
    assert [n for n, s in services.items() if "image" not in s and "build" not in s] == []


def test_build_contexts_and_dockerfiles_exist() -> None:
    """Each build context is a folder and its Dockerfile a file, relative to deploy/."""
    builds = [s["build"] for s in _services(COMPOSE).values() if "build" in s]
    builds += [s["build"] for s in _services(COMPOSE_GPU).values() if "build" in s]
    assert len(builds) == 3
    for build in builds:
        context = (DEPLOY / build["context"]).resolve()
        assert context == REPO
        assert (context / build["dockerfile"]).resolve() == DOCKERFILE


def test_mounted_files_exist_and_volumes_are_declared() -> None:
    """Every bind-mounted host path exists in the repository; named volumes are declared."""
    compose = load_yaml(COMPOSE)
    missing = [
        (name, source)
        for name, service in compose["services"].items()
        for source, _ in _bind_mounts(service)
        if not (DEPLOY / source).exists()
    ]
    assert missing == []
    named = {
        v.split(":")[0]
        for s in compose["services"].values()
        for v in s.get("volumes", [])
        if not v.startswith((".", "/"))
    }
    assert named == set(compose["volumes"])


def test_ports_are_published_on_loopback_only() -> None:
    """Every published port is bound to 127.0.0.1 on the host."""
    ports = [p for s in _services(COMPOSE).values() for p in s.get("ports", [])]
    assert len(ports) == 5
    assert [p for p in ports if not p.startswith("127.0.0.1:")] == []


def test_dependencies_name_services() -> None:
    """Every depends_on entry names a service of the same file."""
    services = _services(COMPOSE)
    unknown = {(n, d) for n, s in services.items() for d in _depends_on(s) - set(services)}
    assert unknown == set()
    passwd = services["mosquitto"]["depends_on"]["mosquitto-passwd"]
    assert passwd == {"condition": "service_completed_successfully"}


def test_mounts_match_what_the_configs_expect() -> None:
    """Mosquitto, Prometheus and Grafana find their files where their configs look for them."""
    services = _services(COMPOSE)
    targets = {t for s in services.values() for _, t in _bind_mounts(s)}
    conf = (DEPLOY / "mosquitto/mosquitto.conf").read_text()
    assert "acl_file /mosquitto/config/acl" in conf
    assert "/mosquitto/config/acl" in targets
    provider = load_yaml(DEPLOY / "grafana/provisioning/dashboards/vitals-monitor.yml")
    (dashboards,) = provider["providers"]
    assert (DEPLOY / "grafana/dashboards", dashboards["options"]["path"]) in {
        (DEPLOY / src, dst) for s in services.values() for src, dst in _bind_mounts(s)
    }
    assert "/etc/prometheus/rules" in targets
    scraped = {
        t
        for job in load_yaml(PROMETHEUS_YML)["scrape_configs"]
        for c in job["static_configs"]
        for t in c["targets"]
    }
    assert "monitor:9108" in scraped
    assert services["monitor"]["environment"]["MONITOR_METRICS__PORT"] == "9108"


def test_every_variable_is_documented_in_env_example() -> None:
    """Each ${VAR} the compose files interpolate has a line in deploy/env.example."""
    used = set()
    for path in (COMPOSE, COMPOSE_GPU):
        used |= set(re.findall(r"\$\{([A-Z_]+)", path.read_text()))
    example = (DEPLOY / "env.example").read_text()
    documented = set(re.findall(r"^([A-Z_]+)=", example, flags=re.MULTILINE))
    assert used - documented == set()
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_gpu_override_reserves_a_gpu_and_builds_on_cuda() -> None:
    """compose.gpu.yaml reserves an NVIDIA GPU and passes a CUDA base the Dockerfile declares."""
    services = _services(COMPOSE_GPU)
    assert set(services) <= set(_services(COMPOSE))
    monitor = services["monitor"]
    (device,) = monitor["deploy"]["resources"]["reservations"]["devices"]
    assert device == {"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}
    args = monitor["build"]["args"]
    assert args["BASE_IMAGE"].startswith("nvidia/cuda:")
    declared = {
        ln.split()[1].split("=")[0]
        for st in _dockerfile_stages()
        for ln in st
        if ln.startswith("ARG ")
    }
    assert set(args) <= declared
    assert monitor["command"] == ["run", "--device", "cuda"]


def test_dockerfile_is_multistage_non_root_with_cpu_default() -> None:
    """Several stages, the base chosen by ARG (CPU by default), a non-root final USER."""
    preamble, *stages = _dockerfile_stages()
    assert len(stages) >= 3
    assert "ARG BASE_IMAGE=python:3.11-slim-bookworm" in preamble
    assert stages[0][0] == "FROM ${BASE_IMAGE} AS base"
    final = stages[-1]
    users = [ln.split()[1] for ln in final if ln.startswith("USER ")]
    assert users
    assert users[-1].split(":")[0] not in {"root", "0"}
    assert 'ENTRYPOINT ["monitor"]' in final
    assert any("download.pytorch.org/whl/cpu" in ln for st in stages for ln in st)


def test_dockerfile_copies_only_existing_sources() -> None:
    """Each COPY from the build context names a path that exists and is not docker-ignored."""
    ignored = (REPO / ".dockerignore").read_text().splitlines()
    sources = [
        source
        for stage in _dockerfile_stages()
        for line in stage
        if line.startswith("COPY ") and "--from=" not in line
        for source in line.split()[1:-1]
    ]
    assert sorted(sources) == [
        "README.md",
        "monitor",
        "monitor/assets/models/default/",
        "pyproject.toml",
        "requirements.lock",
        "simulators",
    ]
    assert [s for s in sources if not (REPO / s).exists()] == []
    top = [s.split("/")[0] for s in sources]
    assert [s for s in top if f"!{s}" not in ignored and f"!{s}/" not in ignored] == []


def test_simulator_runs_only_with_the_demo_profile() -> None:
    """The simulator is in profile `demo`; a plain `up` starts no fake patients.

    Compose starts the services without `profiles` by default, and a default service that
    depended on the simulator would start it too: neither may happen.
    """
    services = _services(COMPOSE)
    assert services["simulator"]["profiles"] == ["demo"]
    default = {name for name, s in services.items() if "profiles" not in s}
    assert default == SERVICES - {"simulator"} | {"mosquitto-passwd"}
    assert {(n, d) for n in default for d in _depends_on(services[n]) - default} == set()


def test_image_trains_no_model_and_serves_the_shipped_one() -> None:
    """No stage runs `monitor train`; the runtime serves the model stage, the shipped model."""
    stages = {stage[0].split()[-1]: stage for stage in _dockerfile_stages()[1:]}
    runs = [ln for st in stages.values() for ln in st if ln.startswith("RUN ")]
    assert [ln for ln in runs if "monitor train" in ln] == []
    assert stages["model"][0] == "FROM scratch AS model"
    assert "COPY monitor/assets/models/default/ /" in stages["model"]
    runtime = stages["runtime"]
    assert "COPY --from=model / /opt/vitals-monitor/models/default/" in runtime
    env = " ".join(ln for ln in runtime if ln.startswith("ENV "))
    assert "MONITOR_MODEL__PATH=/opt/vitals-monitor/models/default" in env
    shipped = REPO / "monitor/assets/models/default"
    assert sorted(p.name for p in shipped.iterdir()) == ["card.json", "model.safetensors"]


def test_image_installs_the_locked_dependencies() -> None:
    """torch at the locked version first, then the package constrained by requirements.lock."""
    builder = next(st for st in _dockerfile_stages() if st and st[0].endswith(" AS builder"))
    pips = [ln for ln in builder if ln.startswith("RUN ") and "pip install" in ln]
    assert "COPY requirements.lock ./" in builder
    torch, package = pips
    assert "--no-deps \"$(grep -i '^torch==' requirements.lock)\"" in torch
    assert "--index-url" in torch
    assert "pip install --constraint requirements.lock ." in package
    assert "pip check" in package
    assert builder.index("COPY requirements.lock ./") < builder.index(torch)


def test_a_stuck_daemon_ends_itself_and_compose_restarts_it() -> None:
    """Compose restarts on exit, never on a failed health check: the daemon's service sets
    `metrics.stuck_exit_s` (a valid setting, read from its environment) and a restart
    policy that acts on an exit (tests/reliability/test_inference_stall.py: exit code 3)."""
    monitor = _services(COMPOSE)["monitor"]
    value = monitor["environment"]["MONITOR_METRICS__STUCK_EXIT_S"]
    assert Settings(metrics={"stuck_exit_s": value}).metrics.stuck_exit_s == 30.0
    assert monitor["restart"] in ("unless-stopped", "always", "on-failure")
