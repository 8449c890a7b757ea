"""`monitor demo` end to end, as a user runs it: a subprocess, its output parsed."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.daemon import MONITOR, scrape, total
from tests.support.mosquitto import Mosquitto, free_port

FIRST_ALERT = re.compile(r"first alert ([\d.]+)s after the simulator started \(([\d.]+)s after")
ALERT = re.compile(r"^ALERT \[t\+([\d.]+)s\] (raised|escalated|cleared)\s+(low|medium|high)\s+")
FIGURES = re.compile(r"^\[t\+([\d.]+)s\] patients=(\d+) msg/s=(\d+)")
EVENTS = re.compile(r"(\d+) alert events: (\d+) raised \((\d+) physiological, (\d+) technical\)")
METRICS = re.compile(r"^metrics\s+(http://\S+/metrics)")


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty cache shared by the module: without a shipped model, the first demo trains
    one on the spot (as on a fresh machine) and the later ones reuse it."""
    return tmp_path_factory.mktemp("cache")


def _demo(cache: Path, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "XDG_CACHE_HOME": str(cache)}
    return subprocess.Popen(
        [*MONITOR, "demo", "--no-tty", "--port", str(free_port()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )


#: A demo that is stopped once it has shown what a test waits for runs at most this long
#: by itself: startup alone took 20 to 28 s on a loaded 2-core machine.
SAFETY_DURATION_S = "240"


@dataclass
class DemoRun:
    """What a demo printed, and how long it took."""

    lines: list[str]
    wall_s: float

    @property
    def output(self) -> str:
        """Everything it printed."""
        return "\n".join(self.lines)

    @property
    def alerts(self) -> list[re.Match[str]]:
        """Its ALERT lines."""
        return [m for m in map(ALERT.match, self.lines) if m]


def watch_demo(cache: Path, until_alert: bool) -> DemoRun:
    """Run a demo with a /metrics port; scrape it once messages flow. With `until_alert` the
    demo runs until its first raised alert and is then stopped with SIGTERM, however long its
    startup took; otherwise it runs its 30 s. Checks it exits 0 cleanly and its /metrics
    served the daemon's counters."""
    lines: list[str] = []
    scraped: dict[str, float] = {}
    url = ""
    duration = SAFETY_DURATION_S if until_alert else "30"
    t0 = time.monotonic()
    with _demo(cache, "--duration", duration, "--metrics-port", str(free_port())) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            metrics = METRICS.match(line)
            if metrics:
                url = metrics.group(1)
            figures = FIGURES.match(line)
            if figures and int(figures.group(3)) > 0 and not scraped:
                samples = scrape(url)
                scraped = {
                    "received": total(samples, "monitor_received_total"),
                    "patients": total(samples, "monitor_active_patients"),
                }
            alert = ALERT.match(line)
            if until_alert and alert and alert.group(2) == "raised":
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=120)
    lines += rest.splitlines()
    run = DemoRun(lines, time.monotonic() - t0)
    output = run.output
    assert proc.returncode == 0, output
    assert "stopped cleanly" in output
    assert scraped["received"] > 0, output
    assert scraped["patients"] == 20, output
    return run


def test_demo_shows_an_alert_and_exits_0(cache: Path) -> None:
    """A demo prints alerts with patient and vital and, stopped, says when the first came
    and exits 0. While it runs, its /metrics endpoint serves the daemon's counters."""
    run = watch_demo(cache, until_alert=True)
    output = run.output
    assert any(m.group(2) == "raised" for m in run.alerts), output
    assert re.search(r"patient=p\d{4} (physiological=[a-z_]+|technical=)", output), output
    first = FIRST_ALERT.search(output)
    assert first, output
    events = EVENTS.search(output)
    assert events, output
    n_events, n_raised, physiological, technical = map(int, events.groups())
    assert n_raised == physiological + technical
    # Stopped at its first alert: an event decided while it stops may miss its ALERT line.
    assert n_events >= len(run.alerts) >= 1
    assert "t+S: seconds since the demo started" in output
    print(f"first alert {first.group(1)}s after the simulator, {first.group(2)}s after start")


@pytest.mark.perf
def test_demo_shows_an_alert_within_30_s(cache: Path) -> None:
    """A 30 s demo shows its first alert within 30 s of its start and takes under 50 s in
    all (startup and shutdown included)."""
    run = watch_demo(cache, until_alert=False)
    first = FIRST_ALERT.search(run.output)
    assert first, run.output
    since_demo_start = float(first.group(2))
    print(f"first alert {first.group(1)}s after the simulator, {since_demo_start}s after start")
    print(f"demo wall time {run.wall_s:.1f} s")
    assert since_demo_start <= 30.0
    assert float(run.alerts[0].group(1)) <= 30.0
    assert run.wall_s < 50.0
    events = EVENTS.search(run.output)
    assert events, run.output
    assert int(events.group(1)) == len(run.alerts)  # a demo that ends by itself prints them all


def test_sigterm_and_ctrl_c_stop_it_cleanly(cache: Path) -> None:
    """SIGTERM (and SIGINT, as Ctrl-C sends) shut simulator, daemon and broker down; exit 0."""
    for sig in (signal.SIGTERM, signal.SIGINT):
        with _demo(cache, "--metrics-port", "0") as proc:
            assert proc.stdout is not None
            lines = []
            for line in proc.stdout:
                lines.append(line)
                if line.startswith("["):  # the first refresh: everything runs
                    break
            proc.send_signal(sig)
            rest, _ = proc.communicate(timeout=60)
            output = "".join(lines) + rest
            assert proc.returncode == 0, output
            assert output.rstrip().endswith("stopped cleanly"), output


@pytest.mark.mqtt
def test_broker_option_uses_an_external_broker(cache: Path, mosquitto: Mosquitto) -> None:
    """With --broker the demo starts no broker: the daemon receives over Mosquitto (MQTT 5).
    Stopped once messages flow, however long its startup took."""
    args = ("--broker", mosquitto.url, "--duration", SAFETY_DURATION_S, "--metrics-port", "0")
    with _demo(cache, *args) as proc:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            figures = FIGURES.match(line)
            if figures and int(figures.group(3)) > 0:
                proc.send_signal(signal.SIGTERM)
                break
        rest, _ = proc.communicate(timeout=120)
    output = "".join(lines) + rest
    assert proc.returncode == 0, output
    assert f"broker   {mosquitto.url} (MQTT 5)" in output
    rates = [int(m.group(3)) for m in map(FIGURES.match, output.splitlines()) if m]
    print(f"demo msg/s through the external broker: {rates}")
    assert max(rates) > 0, output  # messages flow (the rate itself: the perf variant)


@pytest.mark.perf
@pytest.mark.mqtt
def test_external_broker_carries_the_full_rate(cache: Path, mosquitto: Mosquitto) -> None:
    """Through an external Mosquitto a 12 s demo reaches 150 msg/s (20 patients x 10
    samples/s, less the refresh's sampling)."""
    with _demo(cache, "--broker", mosquitto.url, "--duration", "12", "--metrics-port", "0") as p:
        output, _ = p.communicate(timeout=40)
    assert p.returncode == 0, output
    rates = [int(m.group(3)) for m in map(FIGURES.match, output.splitlines()) if m]
    print(f"demo msg/s through the external broker: {rates}")
    assert max(rates) >= 150, output
