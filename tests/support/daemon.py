"""The real daemon (`monitor run`) as a subprocess, for end-to-end tests.

Starts it on a free metrics port, waits for /healthz, scrapes /metrics into numbers, and
stops it with SIGTERM (returning the exit code), keeping its JSON log lines.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.support.mosquitto import free_port

MONITOR = [sys.executable, "-m", "monitor.cli"]

#: How long a daemon may take to answer /healthz and then /readyz. Generous: importing torch
#: alone took 15 to 25 s on the shared 2-core machine under load; a test asserts behaviour,
#: not startup time.
STARTUP_TIMEOUT_S = 120.0


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Fetch a Prometheus exposition and return {(sample name, sorted labels): value}."""
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback URL
        text = resp.read().decode()
    out: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """Sum the samples of `name` whose labels include `labels`."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= set(ls))


@dataclass
class Daemon:
    """A `monitor run` subprocess.

    Attributes:
        broker_url: Broker to connect to.
        model: Model directory (None: the shipped default).
        args: Extra CLI arguments.
        env: Extra environment variables (e.g. MONITOR_WINDOW__STALE_AFTER_S).
        inference_slowdown: Make every forward this many times slower
            (tests/support/slowed_run.py); 1 runs `monitor run` itself.
        fail_forwards_while: Every forward raises while this file exists
            (tests/support/slowed_run.py).
        hang_forwards_while: Every forward hangs while this file exists.
        block_loop_while: The daemon's event loop is held while this file exists.
        fail_alerts_while: Every alert publication raises in the client while this file
            exists.
        fail_housekeeping_while: Every housekeeping pass raises while this file exists.
    """

    broker_url: str
    model: Path | None = None
    args: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    inference_slowdown: float = 1.0
    fail_forwards_while: Path | None = None
    hang_forwards_while: Path | None = None
    block_loop_while: Path | None = None
    fail_alerts_while: Path | None = None
    fail_housekeeping_while: Path | None = None
    metrics_port: int = field(default_factory=free_port)
    proc: subprocess.Popen[str] | None = None
    log_path: Path | None = None

    @property
    def metrics_url(self) -> str:
        """The /metrics URL."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    def start(self, log_path: Path, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Start and wait until /healthz answers."""
        slowed = [sys.executable, "-m", "tests.support.slowed_run", str(self.inference_slowdown)]
        faults = {
            "FAIL_FORWARDS_WHILE": self.fail_forwards_while,
            "HANG_FORWARDS_WHILE": self.hang_forwards_while,
            "BLOCK_LOOP_WHILE": self.block_loop_while,
            "FAIL_ALERTS_WHILE": self.fail_alerts_while,
            "FAIL_HOUSEKEEPING_WHILE": self.fail_housekeeping_while,
        }
        injected = {name: str(path) for name, path in faults.items() if path is not None}
        plain = self.inference_slowdown == 1.0 and not injected
        cmd = [
            *(MONITOR if plain else slowed),
            "run",
            "--broker",
            self.broker_url,
            "--metrics-port",
            str(self.metrics_port),
            "--log-format",
            "json",
            *self.args,
        ]
        if self.model is not None:
            cmd += ["--model", str(self.model)]
        # One outbox per daemon, beside its log (never a shared file in the working directory).
        outbox = {"MONITOR_ALERTS__OUTBOX_PATH": str(log_path.with_suffix(".outbox.sqlite3"))}
        # Its patient-state snapshot too (a restart test passes the same path to both).
        outbox["MONITOR_STATE__SNAPSHOT_PATH"] = str(log_path.with_suffix(".snapshot"))
        env = {**os.environ, "OMP_NUM_THREADS": "1", **outbox, **injected, **self.env}
        self.log_path = log_path
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(
            cmd, stdout=self._log, stderr=subprocess.STDOUT, env=env, text=True
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited {self.proc.returncode}: {self.log_text()}")
            if self.http_status("/healthz") == 200:
                return
            time.sleep(0.1)
        raise TimeoutError(f"daemon not healthy after {timeout}s: {self.log_text()}")

    def http_status(self, path: str) -> int | None:
        """GET a path on the metrics port; return the status code, None if unreachable."""
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}{path}", timeout=2
            ) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return None

    def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until /readyz answers 200 (model loaded and broker subscribed)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.http_status("/readyz") == 200:
                return
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s: {self.log_text()}")

    def metrics(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Scrape /metrics."""
        return scrape(self.metrics_url)

    def wait_for(self, name: str, at_least: float, timeout: float = 60.0, **labels: str) -> float:
        """Wait until the summed metric reaches `at_least`; return its value."""
        deadline = time.monotonic() + timeout
        value = 0.0
        while time.monotonic() < deadline:
            value = total(self.metrics(), name, **labels)
            if value >= at_least:
                return value
            time.sleep(0.1)
        raise TimeoutError(f"{name}{labels} = {value} < {at_least} after {timeout}s")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 60.0) -> int:
        """Send `sig` and wait; return the exit code."""
        assert self.proc is not None
        if self.proc.poll() is None:  # stop() after stop() is a no-op
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self._log.closed:
            self._log.close()
        return int(self.proc.returncode)

    def log_text(self) -> str:
        """The daemon's output so far."""
        return self.log_path.read_text() if self.log_path and self.log_path.exists() else ""

    def log_events(self) -> list[dict[str, Any]]:
        """The daemon's JSON log lines, parsed (other lines skipped)."""
        events = []
        for line in self.log_text().splitlines():
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return events


def settle(daemon: Daemon, expected: float, timeout: float = 60.0) -> dict[Any, float]:
    """Wait until the daemon has given an outcome to `expected` messages; return its metrics.

    Raises:
        TimeoutError: Fewer outcomes after `timeout` seconds (the count is in the message).
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        metrics = daemon.metrics()
        if total(metrics, "monitor_messages_total") >= expected:
            return metrics
        time.sleep(0.1)
    raise TimeoutError(f"{total(daemon.metrics(), 'monitor_messages_total')} of {expected}")


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> bool:
    """Poll `check` every 0.1 s until it holds or `timeout` seconds pass; its last answer."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()
