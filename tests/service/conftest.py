"""Fixtures for daemon tests: the model to serve."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.model.store import default_model_path


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """The shipped default model (VITALS_TEST_MODEL overrides it while developing)."""
    path = Path(os.environ.get("VITALS_TEST_MODEL", str(default_model_path())))
    if not (path / "card.json").is_file():
        pytest.fail(f"no model at {path}: the default model must ship with the package")
    return path
