"""Everyday mistakes end in one line that says what to do and exit code 2, not a traceback.

`monitor run` is started as a subprocess (it configures logging and signals for the process);
`train` and `replay` through click's runner.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from monitor.cli import main
from tests.support.mosquitto import Mosquitto

# Nothing listens here: a daemon that got past the mistake would retry the broker forever
# (and the test would time out) instead of exiting.
_NO_BROKER = "mqtt://127.0.0.1:1"
_NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[2]))
    return subprocess.run(
        [sys.executable, "-m", "monitor.cli", "run", "--broker", _NO_BROKER, *args],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )


def _one_line(text: str) -> str:
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    assert "Traceback" not in text
    return lines[0]


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A loopback port another socket listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_run_with_the_metrics_port_in_use(busy_port: int) -> None:
    """A metrics port in use names the address and the setting to change."""
    done = _run("--metrics-port", str(busy_port))
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert line.startswith(f"monitor run: cannot serve /metrics on 127.0.0.1:{busy_port}: ")
    assert "--metrics-port" in line


@pytest.mark.parametrize("host", ["no-such-host.invalid", "192.0.2.1"])
def test_run_with_an_unusable_metrics_host(host: str) -> None:
    """A host that does not resolve or is not this machine's: one line, exit code 2."""
    done = _run("--metrics-host", host)
    assert done.returncode == 2
    line = _one_line(done.stderr)
    assert line.startswith(f"monitor run: cannot serve /metrics on {host}:9108: ")
    assert "--metrics-host" in line


@_NO_CUDA
def test_run_on_cuda_without_a_gpu() -> None:
    """--device cuda without CUDA says so and suggests cpu."""
    done = _run("--device", "cuda")
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "monitor run: device 'cuda': CUDA is not available on this machine; use cpu "
        "(or auto: CUDA when present)"
    )


def test_run_on_an_unknown_device() -> None:
    """--device gpu lists the devices there are."""
    done = _run("--device", "gpu")
    assert done.returncode == 2
    assert _one_line(done.stderr) == (
        "monitor run: device 'gpu': unknown device; use auto, cpu, cuda or cuda:N"
    )


@_NO_CUDA
def test_train_on_cuda_without_a_gpu(tmp_path: Path) -> None:
    """`monitor train --device cuda` refuses before making any data, and writes nothing."""
    out = tmp_path / "model"
    result = CliRunner().invoke(
        main, ["train", "--recipe", "seed", "--device", "cuda", "--out", str(out), "--quiet"]
    )
    assert result.exit_code == 2
    assert isinstance(result.exception, SystemExit)
    assert "device 'cuda': CUDA is not available on this machine" in result.output
    assert not out.exists()


@pytest.mark.mqtt
@pytest.mark.parametrize(
    ("topic", "problem"),
    [("", "is empty"), ("vitals/+", "has a wildcard (+ or #)"), ("vitals/#", "has a wildcard")],
)
def test_live_replay_of_a_record_with_an_unpublishable_topic(
    tmp_path: Path, mosquitto: Mosquitto, topic: str, problem: str
) -> None:
    """A bad record in the middle of a recording is refused before anything is sent."""
    good = '{"topic":"vitals/p1","payload":"{}","received_at":1700000000.0}\n'
    bad = f'{{"topic":"{topic}","payload":"{{}}","received_at":1700000000.5}}\n'
    recording = tmp_path / "rec.jsonl"
    recording.write_text(good + bad + good)
    result = CliRunner().invoke(
        main, ["replay", str(recording), "--broker", mosquitto.url, "--max-speed", "--quiet"]
    )
    assert result.exit_code == 2, result.output
    line = _one_line(result.output)
    assert line.startswith(f"monitor replay: {recording}: record 2: topic {topic!r} {problem}")
    assert "published" not in result.output
