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

The table's scoring is this project's (docs/evaluation.md: onsets inside a window detect it,
onsets outside every window are false alerts). Below it, NAB's own score of the same onsets
(`nab_raw`: the standard profile, each onset a detection at its row, the first 15 % of rows
probationary), pooled over the series and normalized as NAB normalizes it: 100 is every
window found at its first row, 0 is no alert at all, below 0 is worse than silence. Prints
figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import json
import math
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
# NAB's standard profile (config/profiles.json of NAB) and its probationary part
# (nab/sweeper.py: the first 15 % of rows, at most 750, are not scored).
NAB_TP, NAB_FP, NAB_FN = 1.0, 0.11, 1.0
NAB_PROBATION = 0.15
NAB_PROBATION_MAX = 750


def nab_time(text: str) -> float:
    """NAB's ``YYYY-MM-DD HH:MM:SS[.ffffff]`` (UTC) as unix seconds, fraction kept."""
    stamp = datetime.fromisoformat(text)
    return stamp.replace(tzinfo=UTC).timestamp()


def _scaled_sigmoid(position: float) -> float:
    """NAB's weight of a detection at a relative position to a window (nab/sweeper.py)."""
    return -1.0 if position > 3.0 else 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


def nab_raw(
    n_rows: int, windows: list[tuple[int, int]], detections: list[int]
) -> tuple[float, int]:
    """NAB's raw standard-profile score of one series, and the number of windows it scores.

    Args:
        n_rows: Rows of the series.
        windows: Anomaly windows as (first row, last row), inclusive, in order.
        detections: Rows with a detection (here: the rows of a detector's onsets).

    Returns:
        (score, windows scored). As nab/sweeper.py: rows in the probationary part count for
        nothing (and a window that ends there is not scored); a window scores its earliest
        detection, scaled by how early in the window it lies (1 at its first row, near 0 at
        its last), or -1 when none; a detection outside every window costs 0.11, less the
        closer it follows the end of the window before it.
    """
    probation = min(math.floor(NAB_PROBATION * n_rows), NAB_PROBATION_MAX)
    scored = [(a, b) for a, b in windows if b >= probation]
    best = [-NAB_FN] * len(scored)
    false = 0.0
    max_tp = _scaled_sigmoid(-1.0)
    for i in sorted(set(detections)):
        if i < probation:
            continue
        inside = [k for k, (a, b) in enumerate(scored) if a <= i <= b]
        if inside:
            a, b = scored[inside[0]]
            weight = _scaled_sigmoid(-(b - i + 1) / (b - a + 1)) * NAB_TP / max_tp
            best[inside[0]] = max(best[inside[0]], weight)
            continue
        before = [(a, b) for a, b in windows if b < i]
        if before:
            a, b = before[-1]
            false += _scaled_sigmoid(abs(b - i) / max(b - a, 1)) * NAB_FP
        else:
            false -= NAB_FP
    return sum(best) + false, len(scored)


def nab_normalized(raw: float, windows: int) -> float | None:
    """NAB's normalization: 100 x (raw - null) / (perfect - null); null is no detection at
    all (every window missed), perfect every window found at its first row. None without a
    window (such a series only adds its false detections' cost to a pooled raw score, as in
    NAB)."""
    null, perfect = -NAB_FN * windows, NAB_TP * windows
    return None if windows == 0 else 100.0 * (raw - null) / (perfect - null)


def _rows_of(times: list[float], stamps: list[float]) -> list[int]:
    """The row of each time: the last row at or before it (an onset's time is its row's)."""
    return [max(bisect.bisect_right(times, t + 1e-6) - 1, 0) for t in stamps]


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
    report, onsets = work / f"{name}.report.json", work / f"{name}.onsets.csv"
    realdata.cli(
        "evaluate", "--recording", str(rec), "--labels", str(labels), "--model", str(model),
        "--report", str(report), "--tolerance", "0", "--onsets", str(onsets), env=env,
    )  # fmt: skip
    j = json.loads(report.read_text(encoding="utf-8"))
    rows_of = [
        (bisect.bisect_left(times, nab_time(a)), bisect.bisect_right(times, nab_time(b)) - 1)
        for a, b in windows
    ]
    with onsets.open(newline="", encoding="utf-8") as f:
        at: dict[str, list[float]] = {}
        for o in csv.DictReader(f):
            at.setdefault(o["detector"], []).append(float(o["t"]))
    nab_scores = {
        d: nab_raw(len(rows), rows_of, _rows_of(times, at.get(d, [])))
        for d in ("product", *j["baselines"])
    }
    return {
        "name": name,
        "rows": len(rows),
        "labels": len(windows),
        "period": period,
        "samples_scored": j["samples_scored"],
        "seconds": (t_train, time.perf_counter() - t0 - t_train),
        "rows_by": {"product": j["events"], **j["baselines"]},
        "nab": nab_scores,
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
    print_nab(results)


def print_nab(results: list[dict[str, Any]]) -> None:
    """NAB's standard-profile score of each detector's onsets, per series and pooled."""
    detectors = list(results[0]["nab"]) if results else []
    print("\nNAB standard profile, onsets as detections (100 perfect, 0 no alert at all)")
    print(f"{'series':<44}" + "".join(f"{d:>13}" for d in detectors))

    def cells(scores: list[float | None]) -> str:
        return "".join("            -" if c is None else f"{c:>13.1f}" for c in scores)

    for res in results:
        print(f"{res['name']:<44}" + cells([nab_normalized(*res["nab"][d]) for d in detectors]))
    pooled = [
        nab_normalized(sum(r["nab"][d][0] for r in results), sum(r["nab"][d][1] for r in results))
        for d in detectors
    ]
    print(f"{'pooled (every series, as NAB pools)':<44}" + cells(pooled))


if __name__ == "__main__":
    main()
