"""Benchmark offline replay (`monitor replay --offline`) and print figures (it asserts nothing).

Runs the offline replayer over one recording several times and prints, per run, the rate
that `monitor replay --offline` and `monitor evaluate` report (samples scored per second of
replay wall time) and the CPU the main thread spent per record. The main thread's CPU is
what the replay's speed depends on when the inference thread keeps up; unlike wall time, it
barely moves when other work shares the machine. With ``--profile``, one more run under
cProfile prints the functions that took the most time.

    monitor simulate --recording /tmp/mixed.jsonl.gz --patients 50 --duration 3600 \\
        --scenario mixed --seed 5 --start-time 1700000000
    python bench/replay.py /tmp/mixed.jsonl.gz --runs 3
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from monitor.model.predictor import Predictor
from monitor.model.store import load_model
from monitor.replay.offline import OfflineRunner
from monitor.settings import Settings

DEFAULT_MODEL = Path(__file__).resolve().parents[1] / "monitor/assets/models/default"


def replay_once(recording: Path, predictor: Predictor) -> dict[str, float]:
    """Replay the recording once, as `run_offline` does; return its figures."""
    runner = OfflineRunner(predictor, Settings())
    spent = [0.0]
    predict = predictor.predict

    def timed_predict(windows: Any) -> Any:
        c0 = time.thread_time()
        try:
            return predict(windows)
        finally:
            spent[0] += time.thread_time() - c0

    runner.predictor = cast(Predictor, SimpleNamespace(predict=timed_predict))
    cpu0, t0 = time.thread_time(), time.perf_counter()
    records = runner.feed_recording(recording)
    runner.finish()
    elapsed, cpu = time.perf_counter() - t0, time.thread_time() - cpu0
    return {
        "records": records,
        "scored": runner.scored,
        "alerts": len(runner.alerts),
        "elapsed_s": elapsed,
        "samples_per_s": runner.scored / elapsed,
        "main_cpu_us_per_record": cpu / records * 1e6,
        "inference_cpu_us_per_window": spent[0] / max(runner.scored, 1) * 1e6,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("recording", type=Path)
    ap.add_argument("--model", type=Path, default=DEFAULT_MODEL)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--profile", action="store_true", help="one more run under cProfile")
    args = ap.parse_args()
    predictor = Predictor(load_model(args.model), "cpu")
    for run in range(1, args.runs + 1):
        r = replay_once(args.recording, predictor)
        print(
            f"run {run}: {r['scored']:,.0f} samples scored of {r['records']:,.0f} records in "
            f"{r['elapsed_s']:.2f} s: {r['samples_per_s']:,.0f} samples/s; main thread "
            f"{r['main_cpu_us_per_record']:.1f} us CPU per record; inference thread "
            f"{r['inference_cpu_us_per_window']:.1f} us CPU per window; {r['alerts']:.0f} alerts",
            flush=True,
        )
    if args.profile:
        profiler = cProfile.Profile()
        profiler.runcall(replay_once, args.recording, predictor)
        pstats.Stats(profiler).sort_stats("tottime").print_stats(30)


if __name__ == "__main__":
    main()
