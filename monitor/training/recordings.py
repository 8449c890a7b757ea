"""User recordings -> `SplitData`: file loaders, gap segmentation, chronological split.

A loader turns one file into a `Recording` (times and a value matrix with NaN where a
value is missing). Supporting a new format is one function registered in `LOADERS` under
its file suffix.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from monitor.core.vitals import BUILTIN, Registry
from monitor.errors import DataError
from monitor.training.data import FloatArray, Segment, SplitData

TIME_COLUMNS = ("time_s", "t", "time")


@dataclass(frozen=True, slots=True)
class LoadOptions:
    """How to read recordings.

    Attributes:
        columns: File column name -> vital name (e.g. ``{"HR": "heart_rate"}``); columns
            already named as a vital map to themselves.
        features: Vitals to keep, in model order; empty means every vital found.
        zero_is_missing: Treat 0 as "no value" (as in MIMIC numerics).
        signals: Where vital names are resolved: the built-in vitals plus registered
            signals (``--signal``).
    """

    columns: dict[str, str] = field(default_factory=dict)
    features: tuple[str, ...] = ()
    zero_is_missing: bool = False
    signals: Registry = BUILTIN


@dataclass(frozen=True, slots=True)
class Recording:
    """One file's samples: times (s), values ``(T, F)`` with NaN for missing."""

    source: str
    features: tuple[str, ...]
    times: FloatArray
    values: FloatArray


def _cell(text: str | None, zero_is_missing: bool) -> float:
    try:
        value = float(text) if text not in (None, "") else math.nan
    except ValueError:
        value = math.nan
    return math.nan if zero_is_missing and value == 0.0 else value


def load_csv(path: Path, options: LoadOptions) -> Recording:
    """Read a CSV with a time column (``time_s``, ``t`` or ``time``) and vital columns.

    Raises:
        DataError: No time column, no vital column, or an unknown feature.
    """
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh))
        header = list(rows[0].keys()) if rows else []
    time_col = next((c for c in TIME_COLUMNS if c in header), None)
    if time_col is None:
        raise DataError(str(path), f"no time column (one of {TIME_COLUMNS}) in {header}")
    known = options.signals
    mapping = {c: options.columns.get(c, c) for c in header if options.columns.get(c, c) in known}
    for col, name in options.columns.items():
        if col not in header:
            raise DataError(str(path), f"--column {col}: no such column in {header}")
        if name not in known:
            reason = f"--column {col}={name}: unknown vital; {known.known_line()}"
            raise DataError(str(path), reason)
    by_vital = {vital: col for col, vital in mapping.items()}
    features = options.features or tuple(by_vital)
    missing = [f for f in features if f not in by_vital]
    if not features or missing:
        raise DataError(str(path), f"vitals {missing or 'none'} not found; columns {header}")
    times = np.array([_cell(r[time_col], False) for r in rows], dtype=np.float64)
    values = np.array(
        [[_cell(r[by_vital[f]], options.zero_is_missing) for f in features] for r in rows],
        dtype=np.float64,
    ).reshape(len(rows), len(features))
    return Recording(str(path), tuple(features), times, values)


def load_replay(path: Path, options: LoadOptions) -> list[Recording]:
    """Read a replay-format recording (`monitor record`, `import`, `simulate --recording`).

    Every valid vitals message becomes a row of its patient's series (block messages give
    one row per sample); payloads that are not valid messages are skipped, as the daemon
    would refuse them. A vital a message lacks is missing (NaN) in that row.

    Raises:
        DataError: No valid message, or a requested feature never appears.
    """
    from monitor.core.schema import MESSAGE_ADAPTER
    from monitor.replay.recording import read_recording

    rows: dict[str, list[tuple[float, dict[str, float]]]] = {}
    for record in read_recording(path):
        try:
            message = MESSAGE_ADAPTER.validate_json(record.payload)
        except ValueError:
            continue
        series = rows.setdefault(message.patient_id, [])
        series.extend((sample.t, sample.vitals) for sample in message.samples())
    if not rows:
        raise DataError(str(path), "no valid vitals message in the recording")
    found = {name for series in rows.values() for _, vitals in series for name in vitals}
    features = options.features or tuple(v for v in options.signals if v in found)
    if not features:
        reason = f"no known vital in the recording (found {sorted(found)[:8]}); "
        raise DataError(str(path), reason + options.signals.known_line())
    missing = [f for f in features if f not in found]
    if missing:
        raise DataError(str(path), f"vitals {missing} never appear; found {sorted(found)}")
    out = []
    for pid, series in sorted(rows.items()):
        series.sort(key=lambda row: row[0])
        times = np.array([t for t, _ in series], dtype=np.float64)
        values = np.array(
            [
                [_missing(v.get(f, math.nan), options.zero_is_missing) for f in features]
                for _, v in series
            ],
            dtype=np.float64,
        ).reshape(len(series), len(features))
        out.append(Recording(f"{path}#{pid}", tuple(features), times, values))
    return out


def _missing(value: float, zero_is_missing: bool) -> float:
    return math.nan if zero_is_missing and value == 0.0 else value


def _load_csv_list(path: Path, options: LoadOptions) -> list[Recording]:
    return [load_csv(path, options)]


#: File suffix -> loader returning one recording per patient series.
LOADERS: dict[str, Callable[[Path, LoadOptions], list[Recording]]] = {
    ".csv": _load_csv_list,
    ".jsonl": load_replay,
    ".gz": load_replay,
}


def load_recordings(path: Path, options: LoadOptions) -> list[Recording]:
    """Load one file (one series per patient) with the loader registered for its suffix.

    Raises:
        DataError: No loader for the suffix, or the loader's own errors.
    """
    loader = LOADERS.get(path.suffix.lower())
    if loader is None:
        raise DataError(str(path), f"no loader for {path.suffix!r}; known: {sorted(LOADERS)}")
    return loader(path, options)


def load_recording(path: Path, options: LoadOptions) -> Recording:
    """Load a single-series file (a CSV); see `load_recordings` for multi-patient files."""
    loaded = load_recordings(path, options)
    if len(loaded) != 1:
        raise DataError(str(path), f"{len(loaded)} patients in the file; expected one")
    return loaded[0]


def sample_period(rec: Recording) -> float:
    """The median spacing of the recording's times, in seconds."""
    steps = np.diff(rec.times)
    steps = steps[np.isfinite(steps) & (steps > 0)]
    if steps.size == 0:
        raise DataError(rec.source, "fewer than two distinct time stamps")
    return float(np.median(steps))


def segments(values: FloatArray, times: FloatArray, period: float) -> list[Segment]:
    """Split rows into gap-free segments: a missing value or a time jump ends a segment.

    A time jump is a step above 1.5 sample periods (a dropped sample).
    """
    ok = np.isfinite(values).all(axis=1) & np.isfinite(times)
    out: list[Segment] = []
    start: int | None = None
    for i in range(len(ok) + 1):
        jump = i < len(ok) and start is not None and times[i] - times[i - 1] > 1.5 * period
        if start is not None and (i == len(ok) or not ok[i] or jump):
            out.append(Segment(values[start:i].copy()))
            start = None
        if i < len(ok) and ok[i] and start is None:
            start = i
    return out


def split_recordings(
    recordings: Sequence[Recording], split: float, val_fraction: float
) -> SplitData:
    """Split each recording chronologically into train / validation / test rows.

    Rows ``[0, split*T)`` are for training, of which the last `val_fraction` is held out
    for validation; rows ``[split*T, T)`` are the test split.

    Raises:
        DataError: Recordings with different features or sample periods.
    """
    features = recordings[0].features
    period = sample_period(recordings[0])
    train: list[Segment] = []
    val: list[Segment] = []
    test: list[Segment] = []
    for rec in recordings:
        if rec.features != features:
            raise DataError(rec.source, f"features {rec.features} differ from {features}")
        if not math.isclose(sample_period(rec), period, rel_tol=0.01):
            raise DataError(rec.source, f"sample period differs from {period} s")
        n = len(rec.times)
        train_end = int(n * split)
        val_start = int(train_end * (1.0 - val_fraction))
        for part, lo, hi in (
            (train, 0, val_start),
            (val, val_start, train_end),
            (test, train_end, n),
        ):
            part.extend(segments(rec.values[lo:hi], rec.times[lo:hi], period))
    names = ", ".join(Path(r.source).name for r in recordings)
    return SplitData(
        features=features,
        sample_period_s=period,
        train=train,
        val=val,
        test=test,
        description=(
            f"recordings {names}: first {split:.0%} of rows train (last {val_fraction:.0%} "
            f"of those validate), rest test; gaps split segments"
        ),
    )
