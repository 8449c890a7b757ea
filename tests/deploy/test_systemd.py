"""deploy/systemd: the unit restarts on failure, reads an environment file and is sandboxed."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.deploy.contract import DEPLOY, REPO

UNIT = DEPLOY / "systemd" / "vitals-monitor.service"
ENV_EXAMPLE = DEPLOY / "systemd" / "vitals-monitor.env"
INSTALLED_BINARY = "/opt/vitals-monitor/venv/bin/monitor"

needs_systemd_analyze = pytest.mark.skipif(
    shutil.which("systemd-analyze") is None, reason="systemd-analyze not installed"
)


def _unit() -> configparser.ConfigParser:
    # Repeated keys (SystemCallFilter=) are legal in units; keep the last like systemd lists.
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text())
    return parser


def _verifiable_copy(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at an executable that exists on this machine."""
    text = UNIT.read_text()
    assert text.count(INSTALLED_BINARY) == 1
    copy = tmp_path / UNIT.name
    copy.write_text(text.replace(INSTALLED_BINARY, sys.executable))
    return copy


def test_service_restarts_reads_env_and_runs_unprivileged() -> None:
    """Restart=on-failure, an EnvironmentFile, a dedicated user and `monitor run` as ExecStart."""
    service = _unit()["Service"]
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == "/etc/vitals-monitor/vitals-monitor.env"
    assert service["User"] == "vitals-monitor"
    assert service["ExecStart"] == f"{INSTALLED_BINARY} run"
    assert int(service["TimeoutStopSec"]) >= 10
    # The daemon notifies (monitor/service/notify.py); a stuck one is restarted.
    assert service["Type"] == "notify"
    assert service["NotifyAccess"] == "main"
    assert 2 <= int(service["WatchdogSec"]) < 60  # pinged every second; kills a held loop
    assert _unit()["Install"]["WantedBy"] == "multi-user.target"


def test_service_is_sandboxed() -> None:
    """The hardening options that issue 6 asks for are set."""
    service = _unit()["Service"]
    expected = {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "PrivateDevices": "yes",
        "ProtectKernelTunables": "yes",
        "ProtectKernelModules": "yes",
        "ProtectControlGroups": "yes",
        "RestrictNamespaces": "yes",
        "RestrictSUIDSGID": "yes",
        "LockPersonality": "yes",
        "CapabilityBoundingSet": "",
        "RestrictAddressFamilies": "AF_INET AF_INET6 AF_UNIX",
    }
    assert {key: service.get(key) for key in expected} == expected


def test_env_example_sets_what_the_daemon_needs() -> None:
    """The example environment file names the broker, its account, the model and /metrics."""
    keys = {
        line.split("=", 1)[0]
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {
        "MONITOR_BROKER__URL",
        "MONITOR_BROKER__USERNAME",
        "MONITOR_BROKER__PASSWORD",
        "MONITOR_MODEL__PATH",
        "MONITOR_METRICS__HOST",
        "MONITOR_METRICS__PORT",
    } <= keys
    assert "MONITOR_METRICS__HOST=127.0.0.1" in ENV_EXAMPLE.read_text().splitlines()


def test_install_steps_are_documented() -> None:
    """docs/deploy.md installs the unit and the environment file at the paths the unit uses."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    for needle in (
        "deploy/systemd/vitals-monitor.service",
        "/etc/systemd/system/vitals-monitor.service",
        "/etc/vitals-monitor/vitals-monitor.env",
        "useradd --system",
        "systemctl enable --now vitals-monitor",
        INSTALLED_BINARY.removesuffix("/bin/monitor"),
    ):
        assert needle in doc, needle


@needs_systemd_analyze
def test_systemd_analyze_verify_accepts_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` reports nothing: no unknown key, no misplaced option."""
    done = subprocess.run(
        ["systemd-analyze", "verify", str(_verifiable_copy(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (done.returncode, done.stdout + done.stderr) == (0, "")


@needs_systemd_analyze
def test_systemd_exposure_is_low(tmp_path: Path) -> None:
    """`systemd-analyze security --offline` rates the unit's exposure at most 2.0 of 10."""
    unit = str(_verifiable_copy(tmp_path))
    done = subprocess.run(
        ["systemd-analyze", "security", "--offline=yes", "--threshold=20", unit],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr


def _install_steps() -> list[list[str]]:
    """The commands of docs/deploy.md's systemd block, continuation lines joined, comments cut."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    section = doc[doc.index("## systemd") :]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    joined = re.sub(r"\\\n\s*", " ", block)
    return [shlex.split(line, comments=True) for line in joined.splitlines() if line.strip()]


def _installed(steps: list[list[str]]) -> set[tuple[str, str]]:
    """(repository file, destination path) for each file an `install` step copies."""
    copies = set()
    for argv in steps:
        if argv[:1] != ["install"] or "-d" in argv:
            continue
        operands = [
            a
            for i, a in enumerate(argv[1:], 1)
            if not a.startswith("-") and argv[i - 1] not in ("-m", "-o", "-g")
        ]
        *sources, dest = operands
        for pattern in sources:
            for path in sorted(REPO.glob(pattern)):
                rel = str(path.relative_to(REPO))
                target = dest + path.name if dest.endswith("/") else dest
                copies.add((rel, target))
    return copies


def test_documentation_url_is_installed() -> None:
    """Documentation= names a file that the documented install steps put in place."""
    (url,) = _unit()["Unit"]["Documentation"].split()
    assert url.startswith("file://")
    path = url.removeprefix("file://")
    installed = _installed(_install_steps())
    sources = {src for src, dest in installed if dest == path}
    assert sources == {"docs/deploy.md"}


def test_install_steps_install_the_shipped_model_without_training() -> None:
    """No step trains; the model files land in the environment file's MONITOR_MODEL__PATH."""
    steps = _install_steps()
    assert [s for s in steps if "train" in s] == []
    env = dict(
        line.split("=", 1)
        for line in ENV_EXAMPLE.read_text().splitlines()
        if line and not line.startswith("#")
    )
    model_dir = env["MONITOR_MODEL__PATH"]
    installed = _installed(steps)
    shipped = {
        (f"monitor/assets/models/default/{name}", f"{model_dir}/{name}")
        for name in ("card.json", "model.safetensors")
    }
    assert shipped <= installed


def test_install_steps_install_the_locked_dependencies() -> None:
    """torch at the locked version alone first, then the package constrained by the lock."""
    pips = [
        s for s in _install_steps() if s[:1] == [f"{INSTALLED_BINARY.removesuffix('monitor')}pip"]
    ]
    installs = [s[1:] for s in pips if s[1] == "install"]
    torch, package = installs
    assert torch[:2] == ["install", "--no-deps"]
    assert torch[2] == "$(grep -i '^torch==' requirements.lock)"
    assert package == ["install", "--constraint", "requirements.lock", "."]
    assert [s[1:] for s in pips if s[1] == "check"] == [["check"]]
