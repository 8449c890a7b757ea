"""The lower layers stay pure: each module of `monitor.core`, `monitor.model` and
`monitor.engine`, imported alone in a fresh interpreter, loads none of its layer's "never"
modules (docs/architecture.md, Layers). The modules are globbed, so a new module is checked
without being listed here."""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys

import pytest

import monitor.core
import monitor.engine
import monitor.model

#: The layers above both: a lower layer that imports one of them depends on its user.
_UPPER = [
    "monitor.service",
    "monitor.transports",
    "monitor.mqtt",
    "monitor.engine",
    "monitor.replay",
    "monitor.evaluation",
    "monitor.training",
    "monitor.commands",
    "monitor.demo",
    "monitor.settings",
]
_SHELL = ["aiomqtt", "paho", "prometheus_client", "structlog"]

#: Per layer, the modules it must never load (numpy and pydantic only, for the core).
FORBIDDEN = {
    "monitor.core": [
        *_UPPER,
        *_SHELL,
        "asyncio",
        "torch",
        "onnx",
        "onnxruntime",
        "safetensors",
        "monitor.model",
    ],
    # torch itself imports asyncio, so the model layer is held to its own table row: no
    # service, no transport, no metrics or logging library.
    "monitor.model": [*_UPPER, *_SHELL],
    # The engine: core and model only; no event loop, transport, metrics or logging
    # library (it reports through its ports).
    "monitor.engine": [
        *(m for m in _UPPER if m != "monitor.engine"),
        *_SHELL,
        "asyncio",
        "torch",
    ],
}


def modules_of(package: str) -> list[str]:
    """Every module of `package` and its subpackages (by their files, not a list kept by
    hand)."""
    path = {
        "monitor.core": monitor.core.__path__,
        "monitor.model": monitor.model.__path__,
        "monitor.engine": monitor.engine.__path__,
    }
    return sorted(m.name for m in pkgutil.walk_packages(path[package], prefix=f"{package}."))


#: Per layer, the libraries it may use that are imported once before the modules are
#: checked (importing torch in a fresh interpreter per module took 15 to 25 s each here).
ALLOWED = {
    "monitor.core": ["numpy", "pydantic"],
    "monitor.model": ["numpy", "pydantic", "torch", "onnx", "onnxruntime", "safetensors"],
    "monitor.engine": ["numpy", "pydantic"],
}

# Run in a fresh interpreter: import the layer's allowed libraries, then for each module
# fork a child that imports that module alone and reports which forbidden modules (or their
# submodules) are then loaded. Each child starts from the same state: no module of monitor
# loaded, so a module is judged by its own imports, not by what another module loaded.
_PROBE = """
import importlib, json, os, sys
allowed, modules, bad = json.loads(sys.argv[1])
for lib in allowed:
    importlib.import_module(lib)
def found():
    return sorted({b for b in bad for m in sys.modules if m == b or m.startswith(b + ".")})
out = {"<allowed libraries>": found()}
for module in modules:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            importlib.import_module(module)
            os.write(w, json.dumps(found()).encode())
        except BaseException as exc:
            os.write(w, json.dumps([f"import failed: {exc!r}"]).encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as pipe:
        out[module] = json.loads(pipe.read())
    os.waitpid(pid, 0)
print(json.dumps(out))
"""


def loaded_after_import(layer: str, modules: list[str]) -> dict[str, list[str]]:
    """For each module of `modules`, imported alone (after `layer`'s allowed libraries):
    which of `layer`'s forbidden modules it left in `sys.modules`."""
    argument = json.dumps([ALLOWED[layer], modules, FORBIDDEN[layer]])
    result = subprocess.run(
        [sys.executable, "-c", _PROBE, argument], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return dict(json.loads(result.stdout))


@pytest.fixture(scope="module")
def probed() -> dict[str, dict[str, list[str]]]:
    """Each layer's modules probed once (one interpreter per layer)."""
    return {layer: loaded_after_import(layer, modules_of(layer)) for layer in FORBIDDEN}


def test_the_glob_finds_every_module() -> None:
    """The glob sees the modules the old hard-coded list missed (scale, slots) and the
    model's own."""
    core = modules_of("monitor.core")
    assert {"monitor.core.scale", "monitor.core.slots", "monitor.core.codec"} <= set(core)
    model = set(modules_of("monitor.model"))
    assert {"monitor.model.store", "monitor.model.architectures.medical_lstm"} <= model
    engine = set(modules_of("monitor.engine"))
    assert {"monitor.engine.ports", "monitor.engine.scheduler"} <= engine


@pytest.mark.parametrize(
    ("layer", "module"),
    [(layer, m) for layer in FORBIDDEN for m in modules_of(layer)],
    ids=lambda value: value.rsplit(".", 1)[-1],
)
def test_module_loads_nothing_its_layer_forbids(
    probed: dict[str, dict[str, list[str]]], layer: str, module: str
) -> None:
    """Imported alone, the module loads none of its layer's forbidden modules (and the
    layer's allowed libraries alone load none either)."""
    assert probed[layer]["<allowed libraries>"] == []
    assert probed[layer][module] == []


def test_the_probe_sees_a_forbidden_import() -> None:
    """The probe itself works: importing a service module is seen to load prometheus_client
    and the service package (a probe that saw nothing would pass every module)."""
    seen = loaded_after_import("monitor.core", ["monitor.service.metrics"])
    assert {"prometheus_client", "monitor.service"} <= set(seen["monitor.service.metrics"])
