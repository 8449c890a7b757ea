"""Benchmark `monitor simulate`: throughput at QoS 0, and rate accuracy in real time.

Starts its own Mosquitto on a free port, a paho subscriber in this process, and the simulator
as a subprocess, then prints figures (it asserts nothing).

    python bench/simulator.py throughput --patients 1000 --duration 60
    python bench/simulator.py rate --patients 1000 --duration 60   # the target run: 600
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import paho.mqtt.client as paho

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.support.mosquitto import Mosquitto


class Counter:
    """Counts received messages and the first arrival time of each sequence number."""

    def __init__(self) -> None:
        self.count = 0
        self.first: float | None = None
        self.last = 0.0
        self.tick_first: dict[int, float] = {}
        self.done = threading.Event()

    def on_message(self, _c: paho.Client, _u: object, msg: paho.MQTTMessage) -> None:
        now = time.perf_counter()
        self.count += 1
        if self.first is None:
            self.first = now
        self.last = now
        p = msg.payload
        i = p.find(b'"seq":') + 6
        seq = int(p[i : p.find(b",", i)])
        self.tick_first.setdefault(seq, now)


def main() -> None:
    """Parse arguments, run the broker, subscriber and simulator, print figures."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("mode", choices=["throughput", "rate"])
    ap.add_argument("--patients", type=int, default=1000)
    ap.add_argument("--rate", type=float, default=1.0)
    ap.add_argument("--duration", type=float, default=None, help="simulated seconds")
    ap.add_argument("--qos", type=int, default=0)
    args = ap.parse_args()
    duration = args.duration or (40.0 if args.mode == "throughput" else 60.0)
    expected = round(args.patients * duration * args.rate)
    with tempfile.TemporaryDirectory() as tmp:
        broker = Mosquitto(workdir=Path(tmp) / "mq")
        broker.start()
        counter = Counter()
        sub = paho.Client(paho.CallbackAPIVersion.VERSION2, protocol=paho.MQTTv311)
        sub.on_message = counter.on_message
        sub.connect("127.0.0.1", broker.port)
        sub.subscribe("vitals/#", qos=args.qos)
        sub.loop_start()
        time.sleep(0.5)
        cmd = [
            str(Path(sys.executable).parent / "monitor"),
            "simulate",
            "--broker",
            broker.url,
            "--patients",
            str(args.patients),
            "--rate",
            str(args.rate),
            "--duration",
            str(duration),
            "--qos",
            str(args.qos),
            "--start-time",
            "1764000000",
        ]
        if args.mode == "throughput":
            cmd.append("--max-speed")
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        wall = time.perf_counter() - t0
        deadline = time.monotonic() + 30
        while counter.count < expected and time.monotonic() < deadline:
            time.sleep(0.1)
        sub.loop_stop()
        sub.disconnect()
        broker.stop()
    summary = json.loads(proc.stderr.strip().splitlines()[-1])
    print(f"simulator summary: {json.dumps(summary)} (process wall {wall:.2f} s)")
    recv_span = counter.last - (counter.first or counter.last)
    print(f"received {counter.count} of {expected} messages")
    if args.mode == "throughput":
        print(f"published: {summary['messages'] / summary['elapsed_s']:.0f} msg/s")
        print(f"received:  {counter.count / recv_span:.0f} msg/s over {recv_span:.2f} s")
        return
    ticks = sorted(counter.tick_first)
    span = counter.tick_first[ticks[-1]] - counter.tick_first[ticks[0]]
    requested = args.patients * args.rate
    achieved = args.patients * (ticks[-1] - ticks[0]) / span
    lateness = [
        counter.tick_first[k] - counter.tick_first[ticks[0]] - (k - ticks[0]) / args.rate
        for k in ticks
    ]
    print(
        f"requested rate {requested:.3f} msg/s, achieved {achieved:.3f} msg/s "
        f"(from first arrivals of ticks {ticks[0]}..{ticks[-1]} over {span:.3f} s)"
    )
    print(
        f"relative error {achieved / requested - 1:+.6%}; "
        f"tick arrival offset min {min(lateness) * 1e3:.2f} ms, max {max(lateness) * 1e3:.2f} ms"
    )


if __name__ == "__main__":
    main()
