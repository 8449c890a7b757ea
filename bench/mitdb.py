"""More MIT-BIH Arrhythmia records through bench/realdata.py's ECG protocol (held out).

The bench data hold one MIT-BIH record (100, the database's calmest: 34 abnormal beats,
33 of them atrial). The records with frequent ventricular ectopy (bigeminy, runs) are
where a beat-rhythm detector earns or loses its keep, so this bench runs more of them,
from the converted copy that the tpcp library keeps as example data
(github.com/mad-lab-fau/tpcp, folder ``example_data/ecg_mit_bih_arrhythmia/data``: per record
``NNN.pk.gz``, the first channel in mV at 360 Hz as a pickled pandas frame; ``NNN_all.csv``,
the sample of every annotated beat; ``NNN_pvc.csv``, the samples of the ``V`` beats). That
copy names ventricular premature beats only, so here **the events are the V beats**; an
onset on another abnormal beat (an atrial premature one) counts as a false alert. Each
record is written in the shape of the bench's own (``time_s,MLII_mV`` and
``sample,time_s,symbol,aux`` with N or V) and run as ``mitdb100_ecg`` is: `monitor import`,
`monitor train` on its first 15 %, `monitor evaluate` with both baselines, tolerance 0.5 s.

    python bench/mitdb.py --tpcp /path/to/tpcp [--records 119 106 200] [--work /tmp/mitdb]

The signals are pickles, which run code when loaded: use a tpcp checkout you trust.

Prints figures; asserts nothing. About a minute and a half per record.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))

import realdata  # the sibling bench module: its ECG spec, runner and table

RECORDS = ("100", "102", "104", "105", "106", "108", "114", "116", "119", "121", "123", "200")
FS = 360.0


def convert(src: Path, record: str, out: Path) -> tuple[str, str, int]:
    """Write one record of tpcp's copy in the bench's shape; return the signal and
    annotation file names (in `out`) and the number of V beats."""
    # A pickle runs code when loaded: tpcp keeps its signals only in that form, so this
    # bench is for a checkout of tpcp the user trusts (see the module's docstring).
    ecg = pd.read_pickle(src / f"{record}.pk.gz")["ecg"].to_numpy(dtype=np.float64)  # noqa: S301
    beats = pd.read_csv(src / f"{record}_all.csv")["R"].to_numpy()
    pvc = set(pd.read_csv(src / f"{record}_pvc.csv")["PVC"].tolist())
    signal, notes = f"mitdb_{record}_ecg.csv.gz", f"mitdb_{record}_annotations.csv"
    with gzip.open(out / signal, "wt", encoding="utf-8") as f:
        f.write("time_s,MLII_mV\n")
        f.writelines(f"{i / FS:.4f},{v:.4f}\n" for i, v in enumerate(ecg.tolist()))
    with (out / notes).open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["sample", "time_s", "symbol", "aux"])
        w.writerows([s, f"{s / FS:.4f}", "V" if s in pvc else "N", ""] for s in beats.tolist())
    return signal, notes, len(pvc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tpcp", type=Path, required=True, help="a tpcp checkout")
    parser.add_argument("--records", nargs="+", choices=RECORDS, default=list(RECORDS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/mitdb"), help="scratch folder")
    args = parser.parse_args()
    src = args.tpcp / "example_data" / "ecg_mit_bih_arrhythmia" / "data"
    if not src.is_dir():
        sys.exit(f"no MIT-BIH example data at {src}")
    args.work.mkdir(parents=True, exist_ok=True)
    base = realdata.SPECS["mitdb100_ecg"]
    results = []
    for record in args.records:
        signal, notes, n_pvc = convert(src, record, args.work)
        spec = replace(base, name=f"mitdb{record}_ecg", source=signal, annotations=notes)
        res = realdata.run_record(spec, args.work, args.work, None)
        t_imp, t_train, t_eval = res["seconds"]
        facts = f"{n_pvc} V beats, {res['samples_scored']} samples scored"
        realdata.progress(
            spec.name, facts, **{"import": t_imp, "train": t_train, "evaluate": t_eval}
        )
        results.append(res)
    print()
    realdata.print_table(results)


if __name__ == "__main__":
    main()
