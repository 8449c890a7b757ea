"""How fast a stream `monitor record` keeps up with (prints, asserts nothing).

Starts Mosquitto and `monitor record`, then `monitor simulate` with PATIENTS patients at RATE
samples/s each (QoS 0, single-sample messages) for DURATION seconds, and prints how many
messages were published and recorded, the recorder's own summary line, and the CPU time the
recorder process spent while the stream ran (from /proc; its start-up excluded): the rate
one core of it can record, whatever else loads the machine.

    python bench/record.py --patients 1000 --rate 10 --duration 10     # 10,000 msg/s
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from monitor.replay.recording import read_recording
from tests.support.mosquitto import Mosquitto

MONITOR = [sys.executable, "-m", "monitor.cli"]


def cpu_s(pid: int) -> float:
    """User plus system CPU seconds of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main() -> None:
    """Run once and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--patients", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=10.0)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--gz", action="store_true", help="Record to a .jsonl.gz file.")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp())
    broker = Mosquitto(workdir=tmp / "mosquitto")
    broker.start()
    out = tmp / ("r.jsonl.gz" if args.gz else "r.jsonl")
    try:
        recorder = subprocess.Popen(
            [*MONITOR, "record", "--out", str(out), "--broker", broker.url],
            stderr=subprocess.PIPE,
            text=True,
        )
        time.sleep(8.0)  # imports and subscription
        before = cpu_s(recorder.pid)
        sim = [*MONITOR, "simulate", "--broker", broker.url, "--patients", str(args.patients)]
        sim += ["--rate", str(args.rate), "--duration", str(args.duration)]
        done = subprocess.run(sim, check=True, capture_output=True, text=True)
        summary = json.loads(done.stderr.strip().splitlines()[-1])
        time.sleep(2.0)
        spent = cpu_s(recorder.pid) - before
        recorder.terminate()
        _, err = recorder.communicate(timeout=60)
    finally:
        broker.stop()
    recorded = sum(1 for _ in read_recording(out))
    print(f"published {summary['messages']} messages at {summary['samples_per_s']:,.0f} msg/s")
    print(f"recorded {recorded} ({recorded / max(1, summary['messages']):.1%})")
    per = spent / max(1, recorded)
    print(f"recorder CPU {spent:.2f} s: {per * 1e6:.1f} us per message, {1 / per:,.0f} msg/s/core")
    print("recorder said:", err.strip().splitlines()[-1] if err.strip() else "")


if __name__ == "__main__":
    main()
