"""Benchmark sharded daemons on one nats-server and print figures (it asserts nothing).

Side by side in one run on this machine, each part on a fresh single-node nats-server
(JetStream, the MQTT listener, the partition mapping with P = 64; tests/support/nats_server):

* ``throughput``: a max-speed simulator publishes `--patients` x `--samples` single-sample
  messages through the MQTT listener; messages/s handled by one shard (``--shard 0/1``) and
  by two shards (``0/2`` and ``1/2``) side by side, from the simulator's start to the last
  outcome, with the machine's busy CPU share and load average over the part;
* ``recovery``: a fresh ``--shard 0/1`` started on the stream the one-shard part left
  (`--samples` messages per patient): its recovery time, per 1,000 patients;
* ``latency``: a paced simulator (`--latency-patients` at 20x, single samples) through NATS
  to a shard and through Mosquitto to a plain daemon; p99 of a probe's broker transit
  (publish -> subscriber receive, 100 probes/s beside the load) and of the daemon's
  receive -> verdict histogram.

    python bench/shards.py --patients 500 --samples 240
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import paho.mqtt.client as paho

from bench.daemon import busy_cpu_s, quantile
from tests.support.daemon import MONITOR, Daemon, total
from tests.support.mosquitto import Mosquitto
from tests.support.nats_server import NatsServer

#: The simulator's clock runs ahead of the wall clock: lift the future-skew guard.
ENV = {"MONITOR_INGEST__MAX_FUTURE_SKEW_S": "1e9"}
OUTCOMES = ("scored", "warming_up", "duplicate", "late", "invalid", "dropped", "shed", "failed")


def handled(d: Daemon) -> int:
    """Samples that reached a final outcome in `d`."""
    m = d.metrics()
    return int(sum(total(m, "monitor_messages_total", outcome=o) for o in OUTCOMES))


def simulate(url: str, *args: str) -> subprocess.Popen[bytes]:
    """Start `monitor simulate` (QoS 0 single samples) against `url`."""
    return subprocess.Popen(
        [*MONITOR, "simulate", "--broker", url, "--qos", "0", "--seed", "1", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def shard(server: NatsServer, k: int, n: int) -> Daemon:
    """A `monitor run --shard k/n` on the server, recovering from its stream."""
    return Daemon(server.mqtt_url, args=["--shard", f"{k}/{n}", "--nats", server.url], env=ENV)


def throughput(workdir: Path, n: int, patients: int, samples: int) -> dict[str, Any]:
    """Messages/s handled by `n` shards side by side; the server is left running."""
    server = NatsServer(workdir / f"nats-{n}")
    server.start(max_msgs_per_subject=samples)
    shards = [shard(server, k, n) for k in range(n)]
    for k, d in enumerate(shards):
        d.start(workdir / f"throughput-{n}-{k}.log")
    for d in shards:
        d.wait_ready(60)
    want = patients * samples
    cpu0, t0 = busy_cpu_s(), time.perf_counter()
    sim = simulate(server.mqtt_url, "--patients", str(patients), "--duration", str(samples),
                   "--max-speed")  # fmt: skip
    _, err = sim.communicate(timeout=600)
    published = time.perf_counter() - t0
    got, last, stable_since = 0, -1, time.perf_counter()
    while got < want and time.perf_counter() - stable_since < 5:
        got = sum(handled(d) for d in shards)
        if got != last:
            last, stable_since = got, time.perf_counter()
        time.sleep(0.2)
    elapsed = time.perf_counter() - t0
    busy = (busy_cpu_s() - cpu0) / elapsed / (os.cpu_count() or 1)
    per_shard = [handled(d) for d in shards]
    summary = json.loads(err.decode().strip().splitlines()[-1])
    for d in shards:
        d.stop()
    return {
        "shards": n,
        "messages": want,
        "handled": per_shard,
        "seconds": round(elapsed - (5 if got < want else 0), 2),
        "messages_per_s": round(sum(per_shard) / (elapsed - (5 if got < want else 0))),
        "simulator_per_s": summary.get("samples_per_s"),
        "simulator_seconds": round(published, 2),
        "machine_busy": round(busy, 2),
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "server": server,
    }


def recovery(workdir: Path, server: NatsServer) -> dict[str, Any]:
    """Start a fresh single shard on the stream left by the throughput part."""
    d = shard(server, 0, 1)
    t0 = time.perf_counter()
    d.start(workdir / "recovery.log")
    d.wait_ready(300)
    ready = time.perf_counter() - t0
    events = [e for e in d.log_events() if e.get("event") == "recovered"]
    d.stop()
    messages = sum(int(e["messages"]) for e in events)
    seconds = sum(float(e["seconds"]) for e in events)
    patients = int(events[-1]["patients"]) if events else 0
    return {
        "patients": patients,
        "messages": messages,
        "seconds": round(seconds, 2),
        "seconds_per_1000_patients": round(seconds * 1000 / max(patients, 1), 2),
        "messages_per_s": round(messages / max(seconds, 1e-9)),
        "start_to_ready_s": round(ready, 2),
    }


class Probe:
    """Publishes timestamped `probe/<n>` messages and measures their broker transit."""

    def __init__(self, port: int) -> None:
        self.transit: list[float] = []
        self._stop = threading.Event()
        self.sub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.sub.on_message = lambda _c, _u, m: self.transit.append(
            time.perf_counter() - float(m.payload)
        )
        self.sub.connect("127.0.0.1", port)
        self.sub.loop_start()
        self.sub.subscribe("probe/#", qos=0)
        self.pub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        self.pub.connect("127.0.0.1", port)
        self.pub.loop_start()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        """Publish 100 probes/s until stopped."""
        time.sleep(0.5)
        self._thread.start()

    def _run(self) -> None:
        n = 0
        while not self._stop.wait(0.01):
            self.pub.publish(f"probe/{n % 10}", repr(time.perf_counter()).encode(), qos=0)
            n += 1

    def stop(self) -> float:
        """Stop; return the p99 transit in milliseconds."""
        self._stop.set()
        self._thread.join()
        time.sleep(0.3)
        for c in (self.pub, self.sub):
            c.loop_stop()
            c.disconnect()
        return round(float(np.percentile(self.transit, 99)) * 1000, 2) if self.transit else -1


def latency(daemon: Daemon, port: int, url: str, patients: int, seconds: float) -> dict[str, Any]:
    """p99 broker transit and daemon receive -> verdict under a paced load."""
    daemon.wait_ready(60)
    probe = Probe(port)
    probe.start()
    sim = simulate(url, "--patients", str(patients), "--duration", str(seconds * 20),
                   "--speed", "20")  # fmt: skip
    time.sleep(8)  # the 120-sample windows fill at 20x in 6 s
    mark = daemon.metrics()
    sim.wait(seconds + 60)
    transit = probe.stop()
    end = daemon.metrics()
    name = "monitor_end_to_end_latency_seconds"
    return {
        "messages_per_s": patients * 20,
        "broker_transit_p99_ms": transit,
        "daemon_receive_to_verdict_p99_ms": round(quantile(end, name, 0.99, mark) * 1000, 2),
    }


def main() -> None:
    """Run the three parts and print one JSON line each."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--patients", type=int, default=500)
    ap.add_argument("--samples", type=int, default=240, help="Messages per patient.")
    ap.add_argument("--latency-patients", type=int, default=100)
    ap.add_argument("--latency-seconds", type=float, default=15.0)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        one = throughput(workdir, 1, args.patients, args.samples)
        server = one.pop("server")
        print(json.dumps({"part": "throughput", **one}), flush=True)
        print(json.dumps({"part": "recovery", **recovery(workdir, server)}), flush=True)
        server.stop()
        two = throughput(workdir, 2, args.patients, args.samples)
        two.pop("server").stop()
        print(json.dumps({"part": "throughput", **two}), flush=True)
        server = NatsServer(workdir / "nats-latency")
        server.start()
        d = shard(server, 0, 1)
        d.start(workdir / "latency-nats.log")
        nats = latency(d, server.mqtt_port, server.mqtt_url, args.latency_patients,
                       args.latency_seconds)  # fmt: skip
        d.stop(signal.SIGTERM)
        server.stop()
        broker = Mosquitto(workdir=workdir / "mosquitto")
        broker.start()
        d = Daemon(broker.url, env=ENV)
        d.start(workdir / "latency-mosquitto.log")
        mosq = latency(d, broker.port, broker.url, args.latency_patients, args.latency_seconds)
        d.stop()
        broker.stop()
        print(json.dumps({"part": "latency", "nats": nats, "mosquitto": mosq}), flush=True)


if __name__ == "__main__":
    main()
