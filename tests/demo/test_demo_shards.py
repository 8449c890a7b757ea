"""`monitor demo --shards 2` end to end, as a user runs it: two shards share the patients on a
spawned nats-server (disjoint, complete, by the partition mapping), the server and its temporary
folder are gone after the stop; without nats-server the command says what to install."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from monitor.demo.stats import Reading, combine
from monitor.transports.nats.partition import partition_of
from tests.support.daemon import MONITOR, scrape, total
from tests.support.mosquitto import free_port

PATIENTS = 12
SHARD_METRICS = re.compile(r"^shard (\d)/2 metrics (http://\S+/metrics)$")
NATS_URL = re.compile(r"^nats\s+nats://127\.0\.0\.1:(\d+) ")
SHARD_LINE = re.compile(r"^  shard (\d)/2: patients=(\d+) msg/s=\d+ scored/s=(\d+) ")
HELD = re.compile(r"^shard (\d)/2 held (\d+) patients: ?(.*)$")

needs_nats = pytest.mark.skipif(shutil.which("nats-server") is None, reason="no nats-server")


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    (tmp_path / "tmp").mkdir(exist_ok=True)
    return {
        **os.environ,
        "OMP_NUM_THREADS": "1",
        # An empty cache: without a shipped model the demo trains one there.
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        # The spawned server's temporary folder goes here, where the test can look.
        "TMPDIR": str(tmp_path / "tmp"),
        **extra,
    }


@needs_nats
def test_two_shards_share_the_patients_and_stop_cleanly(tmp_path: Path) -> None:
    """Stopped with SIGTERM once both shards scored samples: exit 0, each shard held the
    patients of its partitions (disjoint, together all), its /metrics agreed, and the
    nats-server and its folder are gone."""
    lines: list[str] = []
    urls: dict[str, str] = {}
    active: dict[str, float] = {}
    nats_port = 0
    scoring: set[str] = set()
    args = ["demo", "--no-tty", "--shards", "2", "--patients", str(PATIENTS)]
    # A safety duration only: the test stops it once both shards scored samples.
    args += ["--duration", "240", "--metrics-port", str(free_port())]
    with subprocess.Popen(
        [*MONITOR, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(tmp_path),
    ) as proc:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.append(line.rstrip("\n"))
            if m := SHARD_METRICS.match(line):
                urls[m[1]] = m[2]
            if m := NATS_URL.match(line):
                nats_port = int(m[1])
            if (m := SHARD_LINE.match(line)) and int(m[3]) > 0:
                scoring.add(m[1])
            if scoring == {"0", "1"} and not active:
                for k, url in urls.items():
                    active[k] = total(scrape(url), "monitor_active_patients", shard=k)
                proc.send_signal(signal.SIGTERM)
        code = proc.wait(60)
    output = "\n".join(lines)
    assert code == 0, output[-3000:]
    assert "stopped cleanly" in output
    held = {m[1]: set(m[3].split()) for m in map(HELD.match, lines) if m}
    ids = {f"p{i:04d}" for i in range(PATIENTS)}
    for k in ("0", "1"):
        assert held[k] == {p for p in ids if partition_of(p, 64) % 2 == int(k)}, output[-3000:]
        assert held[k]
        assert active[k] == len(held[k])
    assert not held["0"] & held["1"]
    assert held["0"] | held["1"] == ids
    assert not list((tmp_path / "tmp").glob("monitor-demo-nats-*"))
    # The server was stopped: nothing listens on its client port any more.
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", nats_port), 1).close()


def test_without_nats_server_exits_2_with_what_to_install(tmp_path: Path) -> None:
    """No nats-server on PATH: exit 2 and one line naming the package, nothing started."""
    (tmp_path / "empty").mkdir()
    result = subprocess.run(
        [*MONITOR, "demo", "--shards", "2", "--duration", "5"],
        capture_output=True,
        text=True,
        env=_env(tmp_path, PATH=str(tmp_path / "empty")),
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert "apt install nats-server" in result.stderr
    assert not list((tmp_path / "tmp").glob("monitor-demo-nats-*"))


def test_shards_must_divide_the_partitions() -> None:
    """--shards 3 (64 partitions) is a usage error, exit 2."""
    result = subprocess.run(
        [*MONITOR, "demo", "--shards", "3"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 2
    assert "does not divide the 64 partitions" in result.stderr


def _reading(at: float, received: float, e2e: tuple[tuple[float, float], ...]) -> Reading:
    return Reading(at, received, received, 0.0, received, 3.0, 1.0, 2.0, e2e, e2e)


def test_combine_adds_the_shards_counters_and_buckets() -> None:
    """The totals line of the summary: counters, patients and histogram buckets add up."""
    a = _reading(5.0, 10.0, ((0.01, 4.0), (float("inf"), 5.0)))
    b = _reading(6.0, 7.0, ((0.01, 1.0), (float("inf"), 3.0)))
    both = combine([a, b])
    assert both.at == 6.0
    assert both.received == 17.0
    assert both.patients == 6.0
    assert both.technical == 4.0
    assert both.e2e == ((0.01, 5.0), (float("inf"), 8.0))
