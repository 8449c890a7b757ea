"""The Makefile's torch choice: CPU by default, CUDA on request, remembered per venv.

Checked with `make -n` (print the commands, run none) against a venv path in a temporary
folder, so nothing is installed.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.deploy.contract import REPO

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="make not installed")

CPU_INDEX = "https://download.pytorch.org/whl/cpu"
#: The Makefile installs the torch version that requirements.lock pins.
(TORCH,) = [
    ln for ln in (REPO / "requirements.lock").read_text().splitlines() if ln.startswith("torch==")
]


def _dry_run(venv: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["make", "--no-print-directory", "-n", *args, f"VENV={venv}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _pip_installs(output: str) -> list[str]:
    """The arguments of each `pip install` line, in order."""
    return [
        line.split(" pip install -q ", 1)[1].strip()
        for line in output.splitlines()
        if " pip install -q " in line and "--upgrade pip" not in line
    ]


def test_default_install_pins_the_cpu_build_before_the_project(tmp_path: Path) -> None:
    """`make install` installs torch==X+cpu alone with the CPU index, then the project."""
    done = _dry_run(tmp_path / "venv", "install")
    assert done.returncode == 0, done.stderr
    assert _pip_installs(done.stdout) == [
        f"--no-deps {TORCH}+cpu --extra-index-url {CPU_INDEX}",
        "-e '.[dev]'",
    ]
    assert f"echo cpu > {tmp_path / 'venv'}/.torch" in done.stdout


def test_install_gpu_takes_the_cuda_build(tmp_path: Path) -> None:
    """`make install-gpu` installs torch==X without the +cpu label, and no CPU index."""
    done = _dry_run(tmp_path / "venv", "install-gpu")
    assert done.returncode == 0, done.stderr
    installs = _pip_installs(done.stdout)
    assert installs == [f"--no-deps {TORCH}", "-e '.[dev]'"]
    assert CPU_INDEX not in done.stdout


def test_a_cuda_index_can_be_named(tmp_path: Path) -> None:
    """TORCH_CUDA_INDEX adds a specific CUDA index to the CUDA install."""
    index = "https://download.pytorch.org/whl/cu128"
    done = _dry_run(tmp_path / "venv", "install", "TORCH=cuda", f"TORCH_CUDA_INDEX={index}")
    assert done.returncode == 0, done.stderr
    assert _pip_installs(done.stdout)[0] == f"--no-deps {TORCH} --extra-index-url {index}"


def test_the_choice_is_remembered_by_the_venv(tmp_path: Path) -> None:
    """A venv installed with TORCH=cuda stays CUDA on a later plain `make install`/`make test`."""
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").touch()
    (venv / ".torch").write_text("cuda\n")
    (venv / ".torch-cuda").touch()
    (venv / ".installed").touch()
    done = _dry_run(venv, "install")
    assert done.returncode == 0, done.stderr
    assert _pip_installs(done.stdout) == []  # up to date: nothing reinstalled as CPU
    switched = _dry_run(venv, "install", "TORCH=cpu")
    assert _pip_installs(switched.stdout)[0].startswith(f"--no-deps {TORCH}+cpu ")


def test_an_unknown_choice_is_refused(tmp_path: Path) -> None:
    """TORCH=rocm stops make with one line naming the accepted values."""
    done = _dry_run(tmp_path / "venv", "install", "TORCH=rocm")
    assert done.returncode != 0
    assert "TORCH=rocm: use TORCH=cpu or TORCH=cuda" in done.stderr
