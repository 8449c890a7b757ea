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
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from monitor.core.slots import last_observed
from monitor.core.vitals import BUILTIN, Registry
from monitor.errors import DataError
from monitor.training.data import BoolArray, FloatArray, Segment, SplitData

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
    return _missing(value, zero_is_missing)


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
    would refuse them. A vital a message lacks, or gives as NaN or +-Infinity (which the
    daemon drops as an artifact), is missing (NaN) in that row.

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
    # A NaN or infinite reading passes the schema but is an artifact the daemon drops.
    if not math.isfinite(value) or (zero_is_missing and value == 0.0):
        return math.nan
    return value


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


def hold_slower(
    values: FloatArray, times: FloatArray, period: float
) -> tuple[FloatArray, dict[int, float]]:
    """Put slower vitals onto the recording's grid: each takes its last value until its next.

    A vital whose own samples come more than 1.5 grid periods apart (a record whose signals
    have their own rates: an ECG at 250 Hz, an arterial pressure at 125 Hz; a monitor's
    respiration every 2 s beside a heart rate every second) holds each value for up to 1.5
    of its own periods, as serving carries it forward. A vital at the grid's rate is left
    as it is: a value it lacks is a gap.

    Returns:
        A new array, and the column -> own period of each vital it held.
    """
    out = values.copy()
    held: dict[int, float] = {}
    for j in range(values.shape[1]):
        seen = np.isfinite(values[:, j])
        if np.count_nonzero(seen) < 2:
            continue
        own = float(np.median(np.diff(times[seen])))
        if own <= 1.5 * period:
            continue
        last = last_observed(seen)
        fill = ~seen & (last >= 0)
        fill[fill] &= times[fill] - times[last[fill]] < 1.5 * own
        out[fill, j] = values[last[fill], j]
        held[j] = own
    return out, held


def segments(
    values: FloatArray,
    times: FloatArray,
    period: float,
    stream: str | None = None,
    observed: BoolArray | None = None,
) -> list[Segment]:
    """Split rows into gap-free segments: a missing value or a time jump ends a segment.

    A time jump is a step above 1.5 sample periods (a dropped sample). Every segment is
    marked with `stream` (the series it was cut from), and carries its rows of `observed`
    (where `values` holds a sample, not a held one) when given.
    """
    ok = np.isfinite(values).all(axis=1) & np.isfinite(times)
    out: list[Segment] = []
    start: int | None = None
    for i in range(len(ok) + 1):
        jump = i < len(ok) and start is not None and times[i] - times[i - 1] > 1.5 * period
        if start is not None and (i == len(ok) or not ok[i] or jump):
            seen = None if observed is None else observed[start:i].copy()
            out.append(Segment(values[start:i].copy(), stream=stream, observed=seen))
            start = None
        if i < len(ok) and ok[i] and start is None:
            start = i
    return out


@dataclass(frozen=True, slots=True)
class TrainRange:
    """Which leading rows of each recording are training rows; the rest are held out.

    Exactly one field is set. `fraction` is also what ``--split`` gives.

    Attributes:
        first: The first N samples train.
        until: Samples with a time before this (same clock as the recording's times) train.
        fraction: The first fraction of the samples train, ``0 < fraction < 1``.
    """

    first: int | None = None
    until: float | None = None
    fraction: float | None = None

    def __post_init__(self) -> None:
        if sum(v is not None for v in (self.first, self.until, self.fraction)) != 1:
            raise ValueError("exactly one of first, until, fraction must be set")
        if self.first is not None and self.first < 1:
            raise ValueError(f"first must be >= 1, got {self.first}")
        if self.fraction is not None and not 0.0 < self.fraction < 1.0:
            raise ValueError(f"fraction must be in (0, 1), got {self.fraction}")

    def rows(self, rec: Recording) -> int:
        """Number of leading rows of `rec` that train (may be 0 or all of them)."""
        n = len(rec.times)
        if self.first is not None:
            return min(self.first, n)
        if self.until is not None:
            # Times are sorted (loaders sort them): the rows before `until`.
            return int(np.searchsorted(rec.times, self.until, side="left"))
        assert self.fraction is not None
        return int(n * self.fraction)

    def describe(self) -> str:
        """The range as the command line gave it, for the card and the report."""
        if self.first is not None:
            return f"first {self.first} samples"
        if self.until is not None:
            return f"samples before t={format_time(self.until)}"
        assert self.fraction is not None
        return f"first {self.fraction * 100:g}% of samples"


def parse_time(text: str) -> float:
    """Parse ``--train-until``: unix seconds (or any number on the recording's clock) or an
    ISO 8601 date-time (``2023-11-14T22:13:20Z``; without a zone it is UTC).

    Raises:
        ValueError: Neither a number nor an ISO 8601 date-time.
    """
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        if not math.isfinite(value):
            raise ValueError(f"time must be finite, got {text!r}")
        return value
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"expected unix seconds or an ISO 8601 date-time, got {text!r}") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


#: Times above this are read as unix seconds (after 1973) and also shown as UTC date-times;
#: smaller ones are seconds from a record's start (CSV ``time_s``).
UNIX_TIME_MIN = 1e8


def format_time(t: float) -> str:
    """A sample time for people: seconds, plus the UTC date-time when it is a unix time."""
    if t >= UNIX_TIME_MIN:
        # Rounded first: isoformat truncates, and both parts must show the same millisecond.
        moment = datetime.fromtimestamp(round(t, 3), UTC).isoformat(timespec="milliseconds")
        return f"{t:.3f} ({moment.replace('+00:00', 'Z')})"
    return f"{t:g}"


@dataclass(frozen=True, slots=True)
class RowSplit:
    """Where one recording was cut: rows ``[0, train)`` train, ``[train, total)`` are held out.

    Attributes:
        source: The recording's source (file, ``#patient`` for replay files).
        train: Training rows (their last `val_fraction` validate).
        total: All rows.
        times: The recording's times, to name the ranges.
    """

    source: str
    train: int
    total: int
    times: FloatArray

    @property
    def held_out(self) -> int:
        """Held-out rows."""
        return self.total - self.train

    def describe(self) -> str:
        """One line: which rows (times, count) train and which are held out."""
        t = self.times
        return (
            f"{Path(self.source).name}: training rows 0..{self.train - 1} "
            f"(t {format_time(t[0])} .. {format_time(t[self.train - 1])}, {self.train} samples); "
            f"held out rows {self.train}..{self.total - 1} "
            f"(t {format_time(t[self.train])} .. {format_time(t[-1])}, {self.held_out} samples)"
        )


def plan_split(recordings: Sequence[Recording], train_range: TrainRange) -> list[RowSplit]:
    """Cut each recording by `train_range`, refusing cuts that leave a part empty.

    Raises:
        DataError: A recording would have no training row or no held-out row.
    """
    out = []
    for rec in recordings:
        n = len(rec.times)
        k = train_range.rows(rec)
        if k == 0:
            raise DataError(
                rec.source,
                f"{train_range.describe()} selects no training row "
                f"(samples from t={format_time(rec.times[0])})",
            )
        if k >= n:
            raise DataError(
                rec.source,
                f"{train_range.describe()} leaves no held-out row ({n} samples, last at "
                f"t={format_time(rec.times[-1])})",
            )
        out.append(RowSplit(rec.source, k, n, rec.times))
    return out


#: Recordings whose rows are named one by one in the card's data line; more are summed.
MAX_DESCRIBED = 4


def split_recordings(
    recordings: Sequence[Recording], split: float | TrainRange, val_fraction: float
) -> SplitData:
    """Split each recording chronologically into train / validation / test rows.

    The first rows (`split`: a fraction of the rows, or a `TrainRange`) are for training,
    of which the last `val_fraction` is held out for validation; the rest are the test
    split (the held-out part).

    Raises:
        DataError: Recordings with different features or sample periods, or a range that
            leaves a recording no training or no held-out row.
    """
    train_range = split if isinstance(split, TrainRange) else TrainRange(fraction=split)
    features = recordings[0].features
    period = sample_period(recordings[0])
    for rec in recordings:
        if rec.features != features:
            raise DataError(rec.source, f"features {rec.features} differ from {features}")
        if not math.isclose(sample_period(rec), period, rel_tol=0.01):
            raise DataError(rec.source, f"sample period differs from {period} s")
    train: list[Segment] = []
    val: list[Segment] = []
    test: list[Segment] = []
    held: dict[str, float] = {}
    plan = plan_split(recordings, train_range)
    for k, (rec, cut) in enumerate(zip(recordings, plan, strict=True)):
        val_start = int(cut.train * (1.0 - val_fraction))
        # One stream per recording (one patient in serving), its segments in time order.
        stream = f"{k}:{rec.source}"
        values, slower = hold_slower(rec.values, rec.times, period)
        for j, own in slower.items():
            held[features[j]] = max(own, held.get(features[j], 0.0))
        # Training fits the held values; the windows flag them, and the held-out figures,
        # the residual sigma and the calibration score only the sampled ones, as serving.
        observed = np.isfinite(rec.values) if slower else None
        for part, lo, hi in (
            (train, 0, val_start),
            (val, val_start, cut.train),
            (test, cut.train, cut.total),
        ):
            seen = None if observed is None else observed[lo:hi]
            part.extend(segments(values[lo:hi], rec.times[lo:hi], period, stream, seen))
    names = ", ".join(Path(r.source).name for r in recordings)
    if len(plan) <= MAX_DESCRIBED:
        rows = "; ".join(cut.describe() for cut in plan)
    else:
        rows = (
            f"{len(plan)} series: {sum(c.train for c in plan)} training samples, "
            f"{sum(c.held_out for c in plan)} held out"
        )
    return SplitData(
        features=features,
        sample_period_s=period,
        train=train,
        val=val,
        test=test,
        description=(
            f"recordings {names}: {train_range.describe()} train (last {val_fraction:.0%} "
            f"of those validate), rest held out (test); gaps split segments. {rows}"
        ),
        held=held,
    )
