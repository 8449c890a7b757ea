"""The core is pure: importing it loads no asyncio, MQTT, metrics, logging or torch module."""

from __future__ import annotations

import json
import subprocess
import sys

CORE = [
    "monitor.core.types",
    "monitor.core.schema",
    "monitor.core.vitals",
    "monitor.core.codec",
    "monitor.core.windows",
    "monitor.core.batching",
    "monitor.core.detector",
    "monitor.core.alerts",
]
FORBIDDEN = [
    "asyncio",
    "aiomqtt",
    "paho",
    "prometheus_client",
    "structlog",
    "torch",
    "monitor.service",
]


def test_core_imports_nothing_impure() -> None:
    """A fresh interpreter that imports every core module has none of the forbidden modules."""
    code = (
        "import importlib, json, sys\n"
        f"for name in {CORE!r}: importlib.import_module(name)\n"
        f"print(json.dumps(sorted(m for m in {FORBIDDEN!r} if m in sys.modules)))\n"
        f"print(json.dumps(sorted(m for m in {CORE!r} if m in sys.modules)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    forbidden, loaded = (json.loads(line) for line in result.stdout.splitlines())
    assert forbidden == []
    assert loaded == sorted(CORE)
