"""The real-data protocol on Numenta Anomaly Benchmark series, with the product's own CLI.

A second class of real data beside bench/realdata.py's clinical records, so that a change is
not tuned to one record: machine, sensor and traffic series with labelled incidents. For each
series of the chosen NAB folders: `monitor import` it as a registered signal (bounds from its
own range, period its median spacing), `monitor train` on its first 15 %, `monitor evaluate`
the whole series against NAB's anomaly windows (the product and both baselines on the same
samples), and print one row per series, pooled rows and the F1 ratio, as bench/realdata.py
does. NAB is not part of this repository; give a checkout of github.com/numenta/NAB
(its `data/` and `labels/combined_windows.json`):

    python bench/nab.py --nab /path/to/NAB                       # realKnownCause + realTraffic
    python bench/nab.py --nab /path/to/NAB --folders realAWSCloudwatch
    python bench/nab.py --nab /path/to/NAB --reuse /tmp/nab      # keep the trained models
    python bench/nab.py --nab /path/to/NAB --env MONITOR_DETECTOR__TARGET_FALSE_ALARMS_PER_DAY=0.25

Scoring is this project's (docs/evaluation.md: onsets inside a window detect it, onsets
outside every window are false alerts), not NAB's own weighted score. Prints figures; asserts
nothing.
"""

from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realdata  # the sibling bench module: its CLI runner and table

TRAIN_FRACTION = 0.15


def nab_time(text: str) -> float:
    """NAB's ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC) as unix seconds, fraction kept."""
    stamp = datetime.fromisoformat(text)
    return stamp.replace(tzinfo=UTC).timestamp()


def run_series(
    src: Path, windows: list[list[str]], work: Path, env: tuple[tuple[str, str], ...]
) -> dict[str, Any]:
    """Import, train on the prefix (unless a model is there) and evaluate one series."""
    name = src.stem
    with src.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))[1:]
    times = [nab_time(r[0]) for r in rows]
    values = [float(r[1]) for r in rows]
    lo, hi = min(values), max(values)
    span = max(hi - lo, 1.0)
    period = statistics.median(b - a for a, b in pairwise(times) if b > a)
    # The series' own range, widened tenfold: a registered signal's plausible bounds.
    signal = f"nab:u:{lo - 10 * span:.6g}:{hi + 10 * span:.6g}:{period:g}"
    rec, labels, model = (work / f"{name}{ext}" for ext in (".jsonl.gz", ".labels.csv", ".model"))
    with labels.open("w", encoding="utf-8") as f:
        f.write("patient_id,start,end\n")
        for start, end in windows:
            f.write(f"{name},{nab_time(start)},{nab_time(end)}\n")
    t0 = time.perf_counter()
    if not model.exists():
        realdata.cli(
            "import", str(src), "--out", str(rec), "--patient-id", name, "--map", "value=nab",
            "--signal", signal, "--timezone", "UTC",
        )  # fmt: skip
        realdata.cli(
            "train", "--data", str(rec), "--out", str(model), "--quiet", "--seed", "0",
            "--feature", "nab", "--train-fraction", str(TRAIN_FRACTION), "--signal", signal,
        )  # fmt: skip
    t_train = time.perf_counter() - t0
    report = work / f"{name}.report.json"
    realdata.cli(
        "evaluate", "--recording", str(rec), "--labels", str(labels), "--model", str(model),
        "--report", str(report), "--tolerance", "0", env=env,
    )  # fmt: skip
    j = json.loads(report.read_text(encoding="utf-8"))
    return {
        "name": name,
        "rows": len(rows),
        "labels": len(windows),
        "period": period,
        "samples_scored": j["samples_scored"],
        "seconds": (t_train, time.perf_counter() - t0 - t_train),
        "rows_by": {"product": j["events"], **j["baselines"]},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nab", type=Path, required=True, help="a NAB checkout")
    parser.add_argument("--folders", nargs="+", default=["realKnownCause", "realTraffic"])
    parser.add_argument("--only", nargs="*", help="series names (file stems) to run")
    parser.add_argument("--work", type=Path, default=Path("/tmp/nab"), help="scratch folder")
    parser.add_argument(
        "--reuse", action="store_true", help="keep models already in --work (evaluate only)"
    )
    parser.add_argument(
        "--env", nargs="*", default=[], help="MONITOR_*=VALUE settings for `monitor evaluate`"
    )
    args = parser.parse_args()
    windows = json.loads((args.nab / "labels" / "combined_windows.json").read_text("utf-8"))
    if not args.reuse and args.work.exists():
        for model in args.work.glob("*.model"):
            for f in model.iterdir():
                f.unlink()
            model.rmdir()
    args.work.mkdir(parents=True, exist_ok=True)
    env = tuple((k, v) for k, _, v in (e.partition("=") for e in args.env))
    results = []
    for folder in args.folders:
        for src in sorted((args.nab / "data" / folder).glob("*.csv")):
            if args.only and src.stem not in args.only:
                continue
            res = run_series(src, windows[f"{folder}/{src.name}"], args.work, env)
            t_train, t_eval = res["seconds"]
            facts = f"{res['rows']} rows every {res['period']:g} s, {res['labels']} windows"
            facts += f", {res['samples_scored']} samples scored"
            realdata.progress(res["name"], facts, train=t_train, evaluate=t_eval)
            results.append(res)
    print()
    realdata.print_table(results)


if __name__ == "__main__":
    main()
