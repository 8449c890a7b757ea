"""requirements.lock pins everything the image and the systemd install take from it.

Both install the package with `--constraint requirements.lock`: a dependency missing from the
lock would be installed at whatever version the index offers that day, unaudited.
"""

from __future__ import annotations

import tomllib
from importlib import metadata

from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from tests.deploy.contract import REPO

LOCK = REPO / "requirements.lock"


def _locked() -> dict[str, str]:
    pins = {}
    for line in LOCK.read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[canonicalize_name(name)] = version
    return pins


def _closure(requirements: list[str], extras: frozenset[str] = frozenset()) -> set[str]:
    """Names of the requirements and of everything they need, as installed in this venv."""
    seen: set[str] = set()
    todo = [(Requirement(r), extras) for r in requirements]
    while todo:
        req, wanted = todo.pop()
        env = default_environment()
        applies = req.marker is None or any(
            req.marker.evaluate({**env, "extra": extra}) for extra in (wanted or {""})
        )
        name = canonicalize_name(req.name)
        if not applies or name in seen:
            continue
        seen.add(name)
        for child in metadata.requires(req.name) or []:
            todo.append((Requirement(child), frozenset(req.extras)))
    return seen


def test_lock_lines_are_exact_pins() -> None:
    """Every line of the lock is `name==version`, one per package, without local labels."""
    lines = [ln for ln in LOCK.read_text().splitlines() if ln and not ln.startswith("#")]
    assert [ln for ln in lines if ln.count("==") != 1 or "+" in ln] == []
    assert len(_locked()) == len(lines)


def test_lock_covers_the_runtime_dependencies() -> None:
    """The package's dependencies and theirs are all pinned in requirements.lock."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = _closure(project["dependencies"])
    assert {"torch", "numpy", "setuptools"} <= needed
    assert needed - set(_locked()) == set()


def test_lock_covers_the_dev_extra() -> None:
    """The `dev` extra (tests, lint, audit, manifest validation) is pinned as well."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    needed = _closure(project["optional-dependencies"]["dev"])
    assert needed - set(_locked()) == set()
