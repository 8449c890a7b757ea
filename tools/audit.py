"""Audit the locked dependencies with pip-audit, when an advisory service is reachable.

pip-audit asks PyPI's JSON API (https://pypi.org/pypi/<name>/<version>/json) for known
vulnerabilities. Where that API does not answer (a machine that reaches PyPI only through a
simple-index mirror, as the development and CI machines of this project do), the audit
cannot run: this script says so loudly and exits 0 rather than passing an audit that
checked nothing. Where it answers, `pip-audit --strict` runs and any finding, or any
package it could not audit, fails the step.
"""

from __future__ import annotations

import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

#: A version-specific endpoint: the one pip-audit needs (a mirror may serve only the others).
PROBE = "https://pypi.org/pypi/pip/24.0/json"


def reachable() -> bool:
    """True when PyPI's per-version JSON API answers (the service pip-audit uses)."""
    try:
        with urllib.request.urlopen(PROBE, timeout=20) as resp:
            return bool(resp.status == 200)
    except (urllib.error.URLError, TimeoutError, OSError):
        return False


def main() -> int:
    """Run the audit or report why it cannot run."""
    if not reachable():
        print(
            f"AUDIT NOT RUN: PyPI's JSON API ({PROBE}) does not answer from this machine, "
            "so pip-audit cannot look up advisories. Run `make audit` where it does.",
            file=sys.stderr,
        )
        return 0
    lock = Path(__file__).resolve().parents[1] / "requirements.lock"
    cmd = [
        sys.executable,
        "-m",
        "pip_audit",
        "--strict",
        "--no-deps",
        "--disable-pip",
        "--progress-spinner",
        "off",
        "-r",
        str(lock),
    ]
    return subprocess.call(cmd)


if __name__ == "__main__":
    sys.exit(main())
