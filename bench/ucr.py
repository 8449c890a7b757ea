"""The real-data protocol on series of the UCR Time Series Anomaly Archive (KDD Cup 2021).

A third class of real data beside bench/realdata.py's clinical records and bench/nab.py's
machine series: single series with one labelled anomaly each, among them the
`InternalBleeding` series (a pig's arterial pressure waveform). Each series goes through
bench/nab.py's `run_series` (registered signal with bounds from its own range, `monitor
train` on its first 15 %, `monitor evaluate` of the whole series against its anomaly window,
the product and both baselines on the same samples). The archive carries no times: sample
i is at i x `--period` seconds (default 1). Files, any mix of:

* the archive's own ``NNN_UCR_Anomaly_<name>_<train end>_<begin>_<end>.txt`` (one value per
  line or whitespace-separated; the anomaly is samples begin .. end, 1-based, as the
  archive numbers them; ``InternalBleeding16`` to ``19`` are in the TranAD repository's
  ``data/UCR/``, github.com/imperial-qore/TranAD);
* aeon's copy (``pip download aeon``: ``aeon/datasets/data/KDD-TSAD_135/
  135_UCR_Anomaly_InternalBleeding16_TEST.csv``, columns ``timestamp,value,is_anomaly``: the
  whole series, the anomaly as the rows marked 1).

    python bench/ucr.py FILE [FILE ...] [--work /tmp/ucr] [--period 1]

Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import csv
import re
import shutil
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import nab  # the sibling bench module: one series through the protocol
import realdata  # its table

_ARCHIVE_NAME = re.compile(r"_UCR_Anomaly_(?P<name>.+)_(?P<train>\d+)_(?P<begin>\d+)_(?P<end>\d+)$")
_EPOCH = datetime(2020, 1, 1, tzinfo=UTC)


def read_series(src: Path) -> tuple[str, list[str], int, int]:
    """A UCR file's name, values and anomaly (first and last sample, 0-based, inclusive)."""
    if src.suffix == ".csv":
        with src.open(newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        flagged = [i for i, r in enumerate(rows) if r["is_anomaly"].strip() == "1"]
        if not flagged:
            sys.exit(f"{src}: no row has is_anomaly = 1")
        name = src.stem.removesuffix("_TEST")
        return name, [r["value"] for r in rows], flagged[0], flagged[-1]
    m = _ARCHIVE_NAME.search(src.stem)
    if m is None:
        sys.exit(f"{src}: not named NNN_UCR_Anomaly_<name>_<train>_<begin>_<end>.txt")
    values = src.read_text(encoding="utf-8").split()
    return src.stem, values, int(m["begin"]) - 1, int(m["end"]) - 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path, help="UCR archive series")
    parser.add_argument("--work", type=Path, default=Path("/tmp/ucr"), help="scratch folder")
    parser.add_argument("--period", type=float, default=1.0, help="seconds per sample")
    args = parser.parse_args()
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for src in args.files:
        name, values, first, last = read_series(src)

        def stamp(i: int) -> str:
            return (_EPOCH + timedelta(seconds=i * args.period)).strftime("%Y-%m-%d %H:%M:%S.%f")

        nab_csv = args.work / f"{name}.csv"
        with nab_csv.open("w", encoding="utf-8") as f:
            f.write("timestamp,value\n")
            f.writelines(f"{stamp(i)},{v}\n" for i, v in enumerate(values))
        shutil.rmtree(args.work / f"{name}.model", ignore_errors=True)  # train afresh
        res = nab.run_series(nab_csv, [[stamp(first), stamp(last)]], args.work, ())
        t_train, t_eval = res["seconds"]
        facts = f"{len(values)} samples, anomaly {first}..{last}, {res['samples_scored']} scored"
        realdata.progress(name, facts, train=t_train, evaluate=t_eval)
        results.append(res)
    print()
    realdata.print_table(results)


if __name__ == "__main__":
    main()
