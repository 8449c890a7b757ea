"""The real-data protocol of docs/evaluation.md, with the product's own CLI, on bench-data.

For each labelled real record: `monitor import` the signal, derive the labels from its
annotations, `monitor train` a model on the first 15 % of its rows, `monitor evaluate` the
whole series (the product and both baselines on the same samples), and print one row per
record; then pooled rows and the ratio of the product's pooled F1 to the better baseline's
(pooled counts are dominated by the record with most false alerts: read the rows too).
The MIMIC-II numerics and the MIMIC DB waveforms have no labels: only onsets per
patient-hour and samples scored. The two 2015 Challenge records have no true event, only a
bedside alarm that experts labelled false: their figures are the onsets per hour over the
record and the onsets inside the alarm's window (`Spec.alarm_window_s`), kept out of the
pooled rows.

    python bench/realdata.py                                  # every record
    python bench/realdata.py --records mitdb100_beats rec12726_bp
    python bench/realdata.py --ecg-minutes 10                 # cut the 360 Hz ECG
    python bench/realdata.py --train-args="--centring last"   # a model choice, every record
    python bench/realdata.py --tolerance-before 1             # onsets up to 1 s before a
                                                              # hand-marked event count

Prints figures; asserts nothing. Times are the records' own seconds from their start, placed
at unix time `START` by the import and by the labels alike.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
START = 1_700_000_000.0
TRAIN_FRACTION = 0.15
DETECTORS = ("product", "rolling_z", "persistence")
#: The ECG lead as a registered signal: name, unit, plausible bounds, sample period.
ECG_SIGNAL = "ecg_mv:mV:-10:10:0.0027778"
#: The 2015 Challenge's 250 Hz channels and the MIMIC DB's 125 Hz ones as registered signals.
CHALLENGE_SIGNALS = (
    "ecg_ii_mv:mV:-10:10:0.004",
    "ecg_v_mv:mV:-10:10:0.004",
    "pleth_nu:NU:-10:10:0.004",
    "resp_nu:NU:-10:10:0.004",
)
MIMICDB_SIGNALS = (
    "ecg_mcl1_mv:mV:-10:10:0.008",
    "abp_mmhg:mmHg:0:300:0.008",
    "resp_mv:mV:-10:10:0.008",
)
#: The Challenge's bedside alarm sounds at 5:00 of each record.
CHALLENGE_ALARM_S = 300.0
#: Beat symbols that are not normal (AAMI classes S, V, F and Q); record 100 has A and V.
ABNORMAL_BEATS = ("A", "a", "J", "S", "V", "E", "F", "/", "f", "Q")


@dataclass(frozen=True)
class Spec:
    """One record of the protocol.

    Attributes:
        name: Patient id and row name.
        source: Signal CSV, relative to the data folder.
        maps: COLUMN=VITAL pairs for `monitor import --map`.
        features: The model's vitals.
        annotations: Beat annotations or event rows the labels come from (None: unlabelled).
        label_kind: "beats" (rows whose symbol is abnormal) or "events" (timed events).
        label_duration_s: Seconds a label lasts after its event's (end) time.
        tolerance_s: `monitor evaluate --tolerance`.
        tolerance_before_s: `monitor evaluate --tolerance-before` (0 in the protocol).
        import_args: Further `monitor import` options.
        train_args: Further `monitor train` options.
        settings: Daemon settings for `monitor evaluate`, as MONITOR_* environment variables.
        shipped_model: Evaluate the shipped default model instead of one trained on the prefix.
        alarm_window_s: For a record whose only annotation is a bedside alarm that experts
            labelled false: the alarm's window (seconds from the record's start). The bench
            writes it as the one label (kind `false_alarm`), so that the onsets inside it are
            `onsets - false_alerts`; the record is not a labelled one (no true event).
    """

    name: str
    source: str
    maps: tuple[str, ...]
    features: tuple[str, ...]
    annotations: str | None = None
    label_kind: str = "beats"
    label_duration_s: float = 0.0
    tolerance_s: float = 0.0
    tolerance_before_s: float = 0.0
    import_args: tuple[str, ...] = ()
    train_args: tuple[str, ...] = field(default_factory=tuple)
    settings: tuple[tuple[str, str], ...] = ()
    shipped_model: bool = False
    alarm_window_s: tuple[float, float] | None = None


def _signals(specs: Sequence[str]) -> tuple[str, ...]:
    return tuple(a for spec in specs for a in ("--signal", spec))


SPECS = {
    s.name: s
    for s in (
        # Heart rate of each beat (irregular times): an abnormal beat is a point event; an
        # onset up to 2 s (about two beats) after it detects it.
        Spec(
            "mitdb100_beats",
            "mitdb_100_beats.csv",
            ("hr_bpm=heart_rate",),
            ("heart_rate",),
            annotations="mitdb_100_annotations.csv",
            tolerance_s=2.0,
        ),
        # 360 Hz ECG in mV, a registered signal: an onset up to 0.5 s after an abnormal
        # beat's R peak (shorter than a beat) detects it. The trainer sizes the run from the
        # data (window from the beat period, epochs and stride from the window count).
        Spec(
            "mitdb100_ecg",
            "mitdb_100_ecg.csv.gz",
            ("MLII_mV=ecg_mv",),
            ("ecg_mv",),
            annotations="mitdb_100_annotations.csv",
            tolerance_s=0.5,
            import_args=("--signal", ECG_SIGNAL),
            train_args=("--signal", ECG_SIGNAL),
        ),
        # Systolic and diastolic pressure per beat; each tilt-table event (from its start, or
        # its "Initiate", to 30 s after its "Conclude") is an event.
        Spec(
            "rec12726_bp",
            "rec12726_beat_bp.csv",
            ("sys_mmHg=bp_sys", "dia_mmHg=bp_dia"),
            ("bp_sys", "bp_dia"),
            annotations="rec12726_tilt_events.csv",
            label_kind="events",
            label_duration_s=30.0,
            tolerance_s=5.0,
        ),
        # Minute numerics; 0 means no value. No labels. A model trained on them has a 60 s
        # sample period, which sets the gap and signal-lost limits (no settings needed).
        Spec(
            "mimic2_numerics",
            "mimic2_s00001_numerics.csv",
            ("HR=heart_rate", "RESP=resp_rate", "SpO2=spo2"),
            ("heart_rate", "resp_rate", "spo2"),
            tolerance_s=60.0,
            import_args=("--zero-is-missing",),
        ),
        # The same numerics served by the shipped 1 Hz model (three of its six vitals, once
        # a minute), with no settings: its observed mask and stretched gap policy.
        Spec(
            "mimic2_shipped",
            "mimic2_s00001_numerics.csv",
            ("HR=heart_rate", "RESP=resp_rate", "SpO2=spo2"),
            ("heart_rate", "resp_rate", "spo2"),
            tolerance_s=60.0,
            import_args=("--zero-is-missing",),
            shipped_model=True,
        ),
        # 125 Hz ECG, arterial pressure and respiration waveforms, registered signals. No
        # labels: onsets per patient-hour only.
        Spec(
            "mimicdb_03700181",
            "mimicdb_03700181_ecg_abp_resp.csv",
            ("MCL1_mV=ecg_mcl1_mv", "ABP_mmHg=abp_mmhg", "RESP_mV=resp_mv"),
            ("ecg_mcl1_mv", "abp_mmhg", "resp_mv"),
            import_args=_signals(MIMICDB_SIGNALS),
            train_args=_signals(MIMICDB_SIGNALS),
        ),
        # 2015 Challenge, 250 Hz: a bedside ventricular tachycardia alarm at 300 s, the
        # record's end, that experts labelled false. Window: the 10 s before the alarm, where
        # the Challenge places the event that set it off.
        Spec(
            "chal2015_v102s",
            "challenge2015_v102s.csv",
            ("II_mV=ecg_ii_mv", "V_mV=ecg_v_mv", "PLETH_NU=pleth_nu", "RESP_NU=resp_nu"),
            ("ecg_ii_mv", "ecg_v_mv", "pleth_nu", "resp_nu"),
            import_args=_signals(CHALLENGE_SIGNALS),
            train_args=_signals(CHALLENGE_SIGNALS),
            alarm_window_s=(CHALLENGE_ALARM_S - 10.0, CHALLENGE_ALARM_S),
        ),
        # The same for a false asystole alarm at 300 s in a "long" record (30 s after the
        # alarm, no respiration channel): the window runs on to the record's end (330 s),
        # since a raise there would echo the same false alarm.
        Spec(
            "chal2015_a103l",
            "challenge2015_a103l.csv",
            ("II_mV=ecg_ii_mv", "V_mV=ecg_v_mv", "PLETH_NU=pleth_nu"),
            ("ecg_ii_mv", "ecg_v_mv", "pleth_nu"),
            import_args=_signals(CHALLENGE_SIGNALS[:3]),
            train_args=_signals(CHALLENGE_SIGNALS[:3]),
            alarm_window_s=(CHALLENGE_ALARM_S - 10.0, CHALLENGE_ALARM_S + 30.0),
        ),
    )
}


def cli(*args: str, env: Sequence[tuple[str, str]] = ()) -> subprocess.CompletedProcess[str]:
    """Run `python -m monitor.cli ARGS` from the repository; exit on failure with its output."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **dict(env)}
    cmd = [sys.executable, "-m", "monitor.cli", *args]
    done = subprocess.run(cmd, cwd=REPO, env=environ, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout}\n{done.stderr}")
    return done


def source_csv(spec: Spec, data: Path, work: Path, minutes: float | None) -> tuple[Path, int]:
    """The signal as a plain CSV (gunzipped, cut to the first `minutes` when given).

    Returns:
        The file and its data rows.
    """
    src = data / spec.source
    if not spec.source.endswith(".gz") and minutes is None:
        with src.open(encoding="utf-8") as f:
            return src, sum(1 for _ in f) - 1
    out = work / f"{spec.name}.csv"
    opener = gzip.open if spec.source.endswith(".gz") else open
    rows = 0
    with opener(src, "rt", encoding="utf-8") as f, out.open("w", encoding="utf-8") as g:
        g.write(next(f))
        for line in f:
            if minutes is not None and float(line.split(",", 1)[0]) > 60.0 * minutes:
                break
            g.write(line)
            rows += 1
    return out, rows


def _cut_labels(labels: Path, until: float) -> None:
    """Keep only the labels that start by `until` (a signal cut to its first minutes)."""
    with labels.open(newline="", encoding="utf-8") as f:
        rows = list(csv.reader(f))
    kept = [rows[0], *(r for r in rows[1:] if float(r[1]) <= until)]
    with labels.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f, lineterminator="\n").writerows(kept)


def write_alarm_label(spec: Spec, labels: Path) -> None:
    """Write a false alarm's window as the record's one label (kind `false_alarm`).

    With `--tolerance 0` an onset matches it exactly when `start <= t <= end`, so the onsets
    inside the window are the report's `onsets - false_alerts`.
    """
    if spec.alarm_window_s is None:
        raise ValueError(f"{spec.name} has no alarm window")
    lo, hi = (START + t for t in spec.alarm_window_s)
    labels.write_text(
        f"patient_id,start,end,vital,kind\n{spec.name},{lo:.3f},{hi:.3f},,false_alarm\n",
        encoding="utf-8",
    )


def run_record(spec: Spec, data: Path, work: Path, minutes: float | None) -> dict[str, Any]:
    """Import, label, train on the prefix and evaluate one record; return its figures."""
    t0 = time.perf_counter()
    src, rows = source_csv(spec, data, work, minutes)
    rec, labels = work / f"{spec.name}.jsonl.gz", work / f"{spec.name}.labels.csv"
    model = work / f"{spec.name}.model"
    maps = [a for m in spec.maps for a in ("--map", m)]
    imp = ["import", str(src), "--out", str(rec), "--patient-id", spec.name, *maps]
    imp += ["--start-time", str(START), *spec.import_args]
    if spec.alarm_window_s is not None:
        write_alarm_label(spec, labels)
    elif spec.annotations is None:
        labels.write_text("patient_id,start,end\n", encoding="utf-8")
    else:
        imp += ["--labels-from", str(data / spec.annotations), "--labels-out", str(labels)]
        imp += ["--label-duration", str(spec.label_duration_s)]
        if spec.label_kind == "beats":
            imp += ["--anomalous-symbols", ",".join(ABNORMAL_BEATS)]
    cli(*imp)
    if minutes is not None and spec.annotations is not None:
        _cut_labels(labels, START + 60.0 * minutes)
    t_import = time.perf_counter() - t0

    if spec.shipped_model:
        model = REPO / "monitor" / "assets" / "models" / "default"
    else:
        train = ["train", "--data", str(rec), "--out", str(model), "--quiet", "--seed", "0"]
        train += [a for f in spec.features for a in ("--feature", f)]
        train += ["--train-fraction", str(TRAIN_FRACTION), *spec.train_args]
        cli(*train)
    t_train = time.perf_counter() - t0 - t_import

    report = work / f"{spec.name}.report.json"
    cli(
        "evaluate",
        "--recording",
        str(rec),
        "--labels",
        str(labels),
        "--model",
        str(model),
        "--report",
        str(report),
        "--tolerance",
        str(spec.tolerance_s),
        "--tolerance-before",
        str(spec.tolerance_before_s),
        env=spec.settings,
    )
    t_eval = time.perf_counter() - t0 - t_import - t_train
    j = json.loads(report.read_text(encoding="utf-8"))
    in_window: list[dict[str, Any]] = []
    if spec.alarm_window_s is not None:
        # The product's technical alerts in the window: the report counts them, the offline
        # replay's alert file places them.
        alerts = work / f"{spec.name}.alerts.jsonl"
        cli("replay", str(rec), "--offline", "--model", str(model), "--alerts", str(alerts))
        lo, hi = (START + t for t in spec.alarm_window_s)
        with alerts.open(encoding="utf-8") as f:
            events = [json.loads(line) for line in f if line.strip()]
        in_window = [e for e in events if e["state"] == "raised" and lo <= e["t"] <= hi]
    n_labels = max(0, len(labels.read_text(encoding="utf-8").splitlines()) - 1)
    return {
        "name": spec.name,
        "rows": rows,
        "labels": n_labels,
        "samples_scored": j["samples_scored"],
        "shipped_model": spec.shipped_model,
        "alarm_window_s": spec.alarm_window_s,
        "product_raised_in_window": in_window,
        "seconds": (t_import, t_train, t_eval),
        "rows_by": {"product": j["events"], **j["baselines"]},
    }


def _labelled(res: dict[str, Any]) -> bool:
    """A record with true events (not one whose only label is a false alarm's window)."""
    return bool(res["labels"]) and res.get("alarm_window_s") is None


def print_alarm_records(results: Sequence[dict[str, Any]]) -> None:
    """The false-alarm records: onsets per hour, and the onsets inside the alarm's window."""
    for res in results:
        if res.get("alarm_window_s") is None:
            continue
        lo, hi = res["alarm_window_s"]
        print(
            f"\n{res['name']} (a bedside alarm at {CHALLENGE_ALARM_S:g} s labelled false, "
            f"no true event; window {lo:g} .. {hi:g} s): {res['samples_scored']} samples scored"
        )
        for d in DETECTORS:
            x = res["rows_by"][d]
            onsets, hours = x["onsets"], x["scored_hours"]
            inside = onsets - x["false_alerts"]
            rate = None if not hours else onsets / hours
            tech = ""
            if d == "product":
                placed = [
                    f"{e['reason']} on {e['vital']} at {e['t'] - START:.1f} s"
                    for e in res["product_raised_in_window"]
                    if e["kind"] != "physiological"
                ]
                tech = f"; {x['technical_alerts']} technical alerts, {len(placed)} in the window"
                tech += f" ({', '.join(placed)})" if placed else ""
            print(
                f"  {d:<12} {onsets:>5} onsets, {_f(rate, 2)} per hour over {hours:.3f} h, "
                f"{inside} in the alarm's window{tech}"
            )


def _f(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def pooled(results: Sequence[dict[str, Any]], detector: str) -> dict[str, float | None]:
    """Events, detections, false alerts and hours summed over labelled records."""
    rows = [r["rows_by"][detector] for r in results if _labelled(r)]
    events = sum(x["events"] for x in rows)
    found = sum(x["detected"] for x in rows)
    false = sum(x["false_alerts"] for x in rows)
    hours = sum(x["scored_hours"] for x in rows)
    p = None if found + false == 0 else found / (found + false)
    r = None if events == 0 else found / events
    f1 = None if p is None or r is None else (0.0 if p + r == 0 else 2 * p * r / (p + r))
    return {"precision": p, "recall": r, "f1": f1, "fa_h": None if not hours else false / hours}


def progress(name: str, facts: str, **seconds: float) -> None:
    """Print one record's line as it is done: ``NAME: FACTS; step N s, ...``."""
    steps = ", ".join(f"{step} {s:.0f} s" for step, s in seconds.items())
    print(f"{name}: {facts}; {steps}", flush=True)


def print_table(results: Sequence[dict[str, Any]]) -> None:
    """One row per record and detector, then pooled rows and the F1 ratio."""
    labelled = [r for r in results if _labelled(r)]
    if not labelled:
        return
    print(
        f"{'record':<16} {'detector':<12} {'events':>6} {'found':>6} {'prec':>6} {'recall':>6} "
        f"{'f1':>6} {'FA/h':>8} {'max/h':>6} {'hours':>7}"
    )
    for res in labelled:
        for d in DETECTORS:
            x = res["rows_by"][d]
            print(
                f"{res['name']:<16} {d:<12} {x['events']:>6} {x['detected']:>6} "
                f"{_f(x['precision']):>6} {_f(x['recall']):>6} {_f(x['f1']):>6} "
                f"{_f(x['false_alerts_per_hour'], 2):>8} {x['max_onsets_stream_hour']:>6} "
                f"{x['scored_hours']:>7.3f}"
            )
    names = "+".join(r["name"] for r in labelled)
    print(f"\npooled over {names}")
    figures = {d: pooled(labelled, d) for d in DETECTORS}
    for d, x in figures.items():
        print(
            f"{'pooled':<16} {d:<12} {'':>6} {'':>6} {_f(x['precision']):>6} "
            f"{_f(x['recall']):>6} {_f(x['f1']):>6} {_f(x['fa_h'], 2):>8}"
        )
    best = max(figures["rolling_z"]["f1"] or 0.0, figures["persistence"]["f1"] or 0.0)
    mine = figures["product"]["f1"]
    ratio = None if mine is None or best == 0 else mine / best
    print(f"product pooled F1 / better baseline's pooled F1: {_f(ratio)}")
    wins = [
        r["name"]
        for r in labelled
        if (r["rows_by"]["product"]["f1"] or 0.0)
        > max(r["rows_by"][d]["f1"] or 0.0 for d in ("rolling_z", "persistence"))
    ]
    print(f"records where the product's F1 beats both baselines: {len(wins)} of {len(labelled)}")
    rules: dict[str, int] = {}
    for res in labelled:
        for rule, n in res["rows_by"]["product"].get("false_alerts_by_rule", {}).items():
            rules[rule] = rules.get(rule, 0) + n
    if rules:
        listed = ", ".join(f"{rule} {n}" for rule, n in sorted(rules.items()))
        print(f"the product's false alerts by the rule that raised them: {listed}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=REPO / ".." / "shared" / "bench-data",
        help="bench-data folder (its physionet/ holds the records)",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/realdata"), help="scratch folder")
    parser.add_argument("--records", nargs="+", choices=list(SPECS), default=list(SPECS))
    parser.add_argument(
        "--ecg-minutes",
        type=float,
        default=None,
        help="keep only the first N minutes of the 360 Hz ECG (default: all 30)",
    )
    parser.add_argument(
        "--train-args",
        default="",
        help="more `monitor train` options for every record's model, one string "
        '(an experiment: --train-args="--centring last")',
    )
    parser.add_argument(
        "--tolerance-before",
        type=float,
        default=0.0,
        help="seconds an onset may precede the start of a hand-marked event (the tilt "
        "record's; not beat labels). Not the protocol: an option for the owner "
        "(docs/evaluation.md)",
    )
    args = parser.parse_args()
    extra = tuple(shlex.split(args.train_args))
    data = args.data / "physionet"
    if not data.is_dir():
        sys.exit(f"no bench data at {data}")
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.records:
        minutes = args.ecg_minutes if name == "mitdb100_ecg" else None
        spec = replace(
            SPECS[name],
            train_args=(*SPECS[name].train_args, *extra),
            # Hand-marked events only: beat annotations are placed on the beat itself.
            tolerance_before_s=args.tolerance_before if SPECS[name].label_kind == "events" else 0,
        )
        res = run_record(spec, data, args.work, minutes)
        t_imp, t_train, t_eval = res["seconds"]
        cut = "" if minutes is None else f", first {minutes:g} min"
        model = (
            "the shipped model"
            if res["shipped_model"]
            else f"trained on the first {TRAIN_FRACTION:.0%} of its samples"
        )
        labels = (
            "1 false alarm's window, no true event"
            if res["alarm_window_s"] is not None
            else f"{res['labels']} labels"
        )
        facts = (
            f"{res['rows']} rows{cut}, {labels}, {model}, {res['samples_scored']} samples scored"
        )
        progress(name, facts, **{"import": t_imp, "train": t_train, "evaluate": t_eval})
        results.append(res)
    print()
    print_table(results)
    print_alarm_records(results)
    for res in results:
        if not res["labels"]:
            print(f"\n{res['name']} (no labels): {res['samples_scored']} samples scored")
            for d in DETECTORS:
                x = res["rows_by"][d]
                print(
                    f"  {d:<12} {x['onsets']:>5} onsets, {_f(x['false_alerts_per_hour'], 2)} "
                    f"per patient-hour over {x['scored_hours']:.2f} h, "
                    f"max {x['max_onsets_stream_hour']} on one stream in an hour"
                )


if __name__ == "__main__":
    main()
