"""The MQTT transport touches other libraries' private attributes in `_compat` only."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import monitor.transports.mqtt as package
from monitor.transports.mqtt import _compat

PACKAGE = Path(package.__file__).parent


def private_accesses(source: str) -> list[str]:
    """Every ``x._name`` attribute access (not dunder) in `source`, except on ``self``/``cls``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Attribute)
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            base = node.value
            if isinstance(base, ast.Name) and base.id in {"self", "cls", "_compat"}:
                continue
            found.append(f"{ast.unparse(node)} (line {node.lineno})")
    return found


def test_only_the_quarantine_reaches_into_other_libraries() -> None:
    """No module of the transport but `_compat` reads or writes another object's `_name`."""
    modules = sorted(PACKAGE.glob("*.py"))
    assert len(modules) >= 6
    offenders = {
        m.name: hits
        for m in modules
        if m.name != "_compat.py" and (hits := private_accesses(m.read_text()))
    }
    assert offenders == {}
    assert private_accesses((PACKAGE / "_compat.py").read_text())  # the checker sees them


def test_checker_finds_a_private_access() -> None:
    """The checker is not blind: it reports ``client._client`` and ignores ``self._x``."""
    assert private_accesses("client._client\nself._pos\n_compat.hook_reads\n") == [
        "client._client (line 1)"
    ]


@pytest.mark.parametrize(
    ("versions", "message"),
    [
        ({"paho-mqtt": "3.0.0", "aiomqtt": "2.5.1"}, "paho-mqtt >=2.1,<3.0"),
        ({"paho-mqtt": "2.2.0", "aiomqtt": "2.4.0"}, "aiomqtt >=2.5,<3.0"),
    ],
)
def test_versions_outside_the_checked_range_fail_clearly(
    versions: dict[str, str], message: str
) -> None:
    """An installed library outside the checked range is an ImportError naming the range."""
    with pytest.raises(ImportError, match=message):
        _compat.check_versions(versions.__getitem__)
    _compat.check_versions({"paho-mqtt": "2.2.0", "aiomqtt": "2.5.1"}.__getitem__)


def test_settings_do_not_load_the_mqtt_client() -> None:
    """`monitor.settings` holds a BrokerConfig without importing aiomqtt or paho."""
    code = (
        "import sys, monitor.settings\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('aiomqtt', 'paho')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "[]"
