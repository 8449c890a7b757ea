"""Checkpoints: no pickle, and unusable model directories refuse to start (item 12)."""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

import monitor

CANARY_NAME = "canary-was-created"


class _Exploit:
    """Unpickling this calls open(canary, "w"): the file appears if anything unpickles it."""

    def __init__(self, canary: Path) -> None:
        self.canary = canary

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (open, (str(self.canary), "w"))


def run_daemon(model: Path) -> subprocess.CompletedProcess[str]:
    """`monitor run --model <model>` against an unreachable broker: the model loads first."""
    cmd = [sys.executable, "-m", "monitor.cli", "run", "--model", str(model)]
    cmd += ["--broker", "mqtt://127.0.0.1:9", "--metrics-port", "0", "--log-format", "json"]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def copy_model(src: Path, dst: Path) -> Path:
    """A copy of the valid model directory to damage."""
    shutil.copytree(src, dst)
    return dst


def malicious(model_dir: Path, tmp: Path) -> Path:
    path = copy_model(model_dir, tmp / "m")
    (path / "model.safetensors").write_bytes(pickle.dumps(_Exploit(tmp / CANARY_NAME)))
    return path


def pickle_only(model_dir: Path, tmp: Path) -> Path:
    path = tmp / "m"
    path.mkdir()
    shutil.copy(model_dir / "card.json", path / "card.json")
    (path / "model.pt").write_bytes(pickle.dumps(_Exploit(tmp / CANARY_NAME)))
    return path


def truncated(model_dir: Path, tmp: Path) -> Path:
    path = copy_model(model_dir, tmp / "m")
    data = (path / "model.safetensors").read_bytes()
    (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    return path


def mismatched(model_dir: Path, tmp: Path) -> Path:
    path = copy_model(model_dir, tmp / "m")
    card = json.loads((path / "card.json").read_text())
    card["hyperparameters"]["hidden_size"] = 16
    (path / "card.json").write_text(json.dumps(card))
    return path


def unknown_architecture(model_dir: Path, tmp: Path) -> Path:
    path = copy_model(model_dir, tmp / "m")
    card = json.loads((path / "card.json").read_text())
    card["architecture"] = "transformer-xl"
    (path / "card.json").write_text(json.dumps(card))
    return path


def _rewrite(model_dir: Path, tmp: Path, value: float) -> Path:
    path = copy_model(model_dir, tmp / "m")
    tensors = load_file(str(path / "model.safetensors"))
    key = sorted(tensors)[0]
    tensors[key] = tensors[key].clone()
    tensors[key].view(-1)[0] = value
    save_file(tensors, str(path / "model.safetensors"))
    return path


def non_finite(model_dir: Path, tmp: Path) -> Path:
    return _rewrite(model_dir, tmp, float("nan"))


def hash_mismatch(model_dir: Path, tmp: Path) -> Path:
    return _rewrite(model_dir, tmp, 0.123)


@pytest.mark.parametrize(
    ("damage", "expected"),
    [
        (malicious, "unreadable (truncated or corrupt?)"),
        (pickle_only, "missing file model.safetensors"),
        (truncated, "unreadable (truncated or corrupt?)"),
        (mismatched, "shape of"),
        (non_finite, "non-finite values in"),
        (hash_mismatch, "model_version mismatch"),
        (unknown_architecture, "unknown model architecture 'transformer-xl'; known: medical-lstm"),
    ],
    ids=lambda v: getattr(v, "__name__", None),
)
def test_unusable_model_refuses_to_start(
    damage: object, expected: str, model_dir: Path, tmp_path: Path
) -> None:
    """A pickle in place of the weights, a pickle-only directory, truncated weights, a card
    that does not match, NaN weights, weights whose hash differs from the card's version or
    a card naming an unknown architecture: `monitor run` exits 2 with a clear error naming
    the cause, and no pickle is ever run."""
    assert callable(damage)
    result = run_daemon(damage(model_dir, tmp_path))
    assert result.returncode == 2
    assert result.stderr.startswith("monitor run: ")
    assert expected in result.stderr
    assert not (tmp_path / CANARY_NAME).exists()


def test_the_exploit_is_real_and_weights_only_refuses_it(tmp_path: Path) -> None:
    """The test's exploit does create the canary when unpickled naively, while
    torch.load(weights_only=True) refuses it without running it."""
    canary = tmp_path / CANARY_NAME
    blob = tmp_path / "evil.pt"
    torch.save(_Exploit(canary), blob)
    with pytest.raises(pickle.UnpicklingError):
        torch.load(blob, weights_only=True)
    assert not canary.exists()
    pickle.loads(pickle.dumps(_Exploit(canary))).close()  # noqa: S301 - proves the canary works
    assert canary.exists()


def test_package_never_unpickles() -> None:
    """No module of the package calls pickle, or torch.load without weights_only=True."""
    root = Path(monitor.__file__).parent
    offenders = []
    for source in root.rglob("*.py"):
        text = source.read_text()
        if re.search(r"^\s*(import|from)\s+(pickle|dill|joblib)\b|pickle\.loads?\(", text, re.M):
            offenders.append(f"{source}: pickle")
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            if "weights_only=True" not in call:
                offenders.append(f"{source}: {call}")
    assert offenders == []
