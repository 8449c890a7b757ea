"""The beat rhythm alone (monitor/core/rhythm.py) over MIT-BIH record 100's ECG lead.

Feeds the lead (MLII, 360 Hz, 650,000 samples) through `BeatRhythm.find` in batches, as the
scorer does, for each premature share given (and each `--shape` level: the misshapen
beats of `BeatShape` instead, timing off), and prints how many beats it flagged, how many
of the record's abnormal beats (A, V, ...) they found (an onset up to 0.5 s after the
annotated beat, as bench/realdata.py scores the ECG row), how many were false, how many
samples it flagged in asystole (`--asystole`, 4 s as served; 0: off), and the seconds it
took. No model, no calibration: the detector that serves the `premature` (or
`beat_shape`) rule, on its own.

Then, per channel of the records with several (MIT-BIH 100's two leads, the 2015 Challenge
records v102s and a103l), the premature beats each channel confirms alone at 20 %, and how
many of them another channel confirms within `AGREE_S` (what a model with several beat
waveforms raises on).

Last, where the rhythm alone flags asystole (`--asystole`, 4 s): each record's beat
waveforms together and each alone (the records above and MIMIC DB 03700181's lead and
pressure), and with `--tpcp TPCP` the one lead of each MIT-BIH record in the tpcp
library's copy (as bench/mitdb.py).

    python bench/rhythm.py                          # premature 0.15, 0.2, 0.25
    python bench/rhythm.py --premature 0.2 --tpcp TPCP
    python bench/rhythm.py --premature 0.2 --batch 1
    python bench/rhythm.py --premature 0.2 --shape 0.5

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import time
from pathlib import Path

import numpy as np
import pandas as pd

from monitor.core.rhythm import AGREE_S, BeatRhythm, BeatTracker
from monitor.core.slots import SlotMap

DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "bench-data" / "physionet"
ABNORMAL = ("A", "a", "J", "S", "V", "E", "F", "/", "f", "Q")
#: Records with several beat channels: file, channels.
SEVERAL = (
    ("mitdb_100_ecg.csv.gz", ("MLII_mV", "V5_mV")),
    ("challenge2015_v102s.csv", ("II_mV", "V_mV", "PLETH_NU")),
    ("challenge2015_a103l.csv", ("II_mV", "V_mV", "PLETH_NU")),
)
#: The records whose beat waveforms the asystole check reads: file, channels.
WAVEFORMS = (*SEVERAL, ("mimicdb_03700181_ecg_abp_resp.csv", ("MCL1_mV", "ABP_mmHg")))


def asystole_onsets(t: np.ndarray, x: np.ndarray, period: float, limit: float) -> list[float]:
    """The times where the rhythm of one patient's beat waveforms ``x`` (T, F) starts to
    flag asystole (every column a beat waveform, 20 % premature share, batches of 256)."""
    table = SlotMap()
    k = x.shape[1]
    rhythm = BeatRhythm(list(range(k)), [0.2] * k, period, k, table, asystole_s=limit)
    onsets: list[float] = []
    before = False
    for i in range(0, t.size, 256):
        n = min(256, t.size - i)
        out = rhythm.find(table.assign(["p"] * n), x[i : i + n], t[i : i + n].tolist())
        flags = np.zeros(n, dtype=bool)
        if out is not None and out.asystole is not None:
            flags = out.asystole.any(axis=1)
        for j in range(n):
            if flags[j] and not before:
                onsets.append(round(float(t[i + j]), 1))
            before = bool(flags[j])
    return onsets


def asystole(data: Path, tpcp: Path | None, limit: float) -> None:
    """Print where the rhythm alone flags asystole: each record's beat waveforms together,
    then each alone; with `tpcp`, the one lead of each MIT-BIH record in tpcp's copy."""
    for name, channels in WAVEFORMS:
        rows = _read(data / name)
        t = np.array([float(r["time_s"]) for r in rows])
        x = np.array([[float(r[c]) if r[c] else np.nan for c in channels] for r in rows])
        period = (t[-1] - t[0]) / (len(t) - 1)
        alone = {c: asystole_onsets(t, x[:, [i]], period, limit) for i, c in enumerate(channels)}
        print(f"{name}: asystole together {asystole_onsets(t, x, period, limit)}, alone {alone}")
    if tpcp is None:
        return
    for path in sorted((tpcp / "example_data" / "ecg_mit_bih_arrhythmia" / "data").glob("*.pk.gz")):
        ecg = pd.read_pickle(path)["ecg"].to_numpy(dtype=np.float64)  # noqa: S301
        t = np.arange(ecg.size) / 360.0
        print(
            f"MIT-BIH {path.name[:3]} (one lead): asystole {asystole_onsets(t, ecg[:, None], 1 / 360, limit)}"
        )


def _read(path: Path) -> list[dict[str, str]]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def agreement(data: Path) -> None:
    """Print each channel's premature beats alone and those another channel confirms."""
    for name, channels in SEVERAL:
        rows = _read(data / name)
        t = [float(r["time_s"]) for r in rows]
        period = (t[-1] - t[0]) / (len(t) - 1)
        early: dict[str, np.ndarray] = {}
        for channel in channels:
            tracker, found = BeatTracker(period), []
            for ti, r in zip(t, rows, strict=True):
                x = float(r[channel]) if r[channel] else float("nan")
                if x != x:
                    continue
                rr = tracker.step(ti, x)
                if rr is not None and tracker.judge(rr, 0.2):
                    found.append(ti)
            early[channel] = np.array(found)
        parts = []
        for channel in channels:
            others = [early[o] for o in channels if o != channel]
            agreed = sum(
                1 for at in early[channel] if any(np.any(np.abs(o - at) <= AGREE_S) for o in others)
            )
            parts.append(f"{channel} {early[channel].size} ({agreed} confirmed)")
        print(f"{name}: premature beats per channel alone: {', '.join(parts)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=DATA)
    parser.add_argument("--premature", type=float, nargs="+", default=[0.15, 0.2, 0.25])
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--tpcp", type=Path, help="tpcp checkout: also its MIT-BIH leads")
    parser.add_argument(
        "--asystole", type=float, default=4.0, help="asystole_s, as served (0: off)"
    )
    parser.add_argument(
        "--shape", type=float, nargs="*", default=[], help="beat_shape levels to run too"
    )
    args = parser.parse_args()
    rows = _read(args.data / "mitdb_100_ecg.csv.gz")
    t = np.array([float(r["time_s"]) for r in rows])
    x = np.array([float(r["MLII_mV"]) for r in rows])[:, None]
    with (args.data / "mitdb_100_annotations.csv").open(encoding="utf-8") as f:
        beats = [float(a["time_s"]) for a in csv.DictReader(f) if a["symbol"] in ABNORMAL]
    abnormal = np.array(beats)
    print(f"{t.size} samples, {abnormal.size} abnormal beats, batches of {args.batch}")
    runs: list[tuple[str, float | None, float | None]] = [
        (f"premature {share:.2f}", share, None) for share in args.premature
    ]
    runs += [(f"beat_shape {level:.2f}", None, level) for level in args.shape]
    for name, share, level in runs:
        table = SlotMap()
        rhythm = BeatRhythm(
            [0], [share], 1 / 360, 1, table, asystole_s=args.asystole or None, shape=[level]
        )
        started = time.perf_counter()
        flagged: list[float] = []
        silent = 0
        for i in range(0, t.size, args.batch):
            n = min(args.batch, t.size - i)
            out = rhythm.find(table.assign(["p"] * n), x[i : i + n], t[i : i + n].tolist())
            beats = None if out is None else (out.premature if share else out.misshapen)
            if beats is not None:
                flagged += t[i : i + n][beats[:, 0]].tolist()
            if out is not None and out.asystole is not None:
                silent += int(out.asystole.any(axis=1).sum())
        seconds = time.perf_counter() - started
        found: set[int] = set()
        false = 0
        for at in flagged:
            near = np.flatnonzero((at - abnormal >= 0) & (at - abnormal <= 0.5))
            if near.size:
                found.add(int(near[0]))
            else:
                false += 1
        print(
            f"{name}: {len(flagged)} beats flagged, found {len(found)} of "
            f"{abnormal.size}, {false} false, {silent} samples in asystole; {seconds:.2f} s "
            f"({seconds / t.size * 1e6:.1f} us a sample)"
        )
    agreement(args.data)
    if args.asystole:
        asystole(args.data, args.tpcp, args.asystole)


if __name__ == "__main__":
    main()
