"""Time to the first alert of `monitor simulate --quick` into a default daemon (prints, asserts
nothing).

Starts Mosquitto and `monitor run` (the shipped model), subscribes to ``alerts/#``, runs
``monitor simulate --quick --speed SPEED --duration 300`` and prints when the first event
started (from the labels) and when the first physiological alert arrived, counted from the
launch of the simulator command.

    python bench/quick_alert.py 10
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from tests.support.daemon import Daemon
from tests.support.mosquitto import Mosquitto


def main() -> None:
    """Run once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("speed", type=float, nargs="?", default=10.0)
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    broker = Mosquitto(workdir=tmp / "mosquitto")
    broker.start()
    daemon = Daemon(broker.url)
    events: list[tuple[float, dict[str, Any]]] = []
    client = paho.Client(paho.CallbackAPIVersion.VERSION2)
    client.on_message = lambda _c, _u, m: events.append((time.monotonic(), json.loads(m.payload)))
    try:
        daemon.start(tmp / "daemon.log")
        daemon.wait_ready()
        client.connect("127.0.0.1", broker.port)
        client.subscribe("alerts/#", 1)
        client.loop_start()
        labels = tmp / "labels.jsonl"
        cmd = [sys.executable, "-m", "monitor.cli", "simulate", "--broker", broker.url]
        cmd += ["--quick", "--speed", str(args.speed), "--duration", "300"]
        t0 = time.monotonic()
        subprocess.run([*cmd, "--labels", str(labels)], check=True, capture_output=True)
        time.sleep(2.0)
    finally:
        client.loop_stop()
        daemon.stop()
        broker.stop()
    starts = [json.loads(line)["start_seq"] for line in labels.read_text().splitlines()]
    raised = [t - t0 for t, e in events if e["kind"] == "physiological" and e["state"] == "raised"]
    print(f"first event at seq {min(starts)}; {len(raised)} physiological alerts raised")
    if raised:
        print(f"first physiological alert {raised[0]:.1f} s after the simulator was launched")


if __name__ == "__main__":
    main()
