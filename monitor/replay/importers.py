"""Import CSV tables and PhysioNet WFDB records into recordings of vitals messages.

The policy for gaps and irregular times (docs/recordings.md):

* A value is missing when its cell is empty or NaN, or 0 with ``zero_is_missing``.
* Rows are sorted by time. Without a period, each distinct time is one sample at its real time
  (irregular times are kept); rows sharing a time merge, the later row's values winning.
* With a period P, times are binned into ``[k*P, (k+1)*P)`` and each bin becomes one sample
  stamped ``k*P``, holding the last (or mean) finite value of each vital in the bin.
* A sample needs at least one vital (all mapped vitals with ``require_all``); one that has too
  few is skipped. Sequence numbers count emitted samples only (no holes), so a skipped stretch
  shows as a time gap, which the daemon's window treats by its gap limit.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.core.schema import encode_sample
from monitor.core.vitals import VITALS
from monitor.errors import DataError
from monitor.replay.recording import Record, RecordingWriter

FloatArray = npt.NDArray[np.float64]

#: Column or WFDB signal names that map to a vital when no explicit mapping is given.
DEFAULT_NAMES: dict[str, str] = {
    "hr": "heart_rate",
    "hr_bpm": "heart_rate",
    "heart_rate": "heart_rate",
    "spo2": "spo2",
    "%spo2": "spo2",
    "resp": "resp_rate",
    "resp_rate": "resp_rate",
    "abpsys": "bp_sys",
    "abpdias": "bp_dia",
    "sys_mmhg": "bp_sys",
    "dia_mmhg": "bp_dia",
    "temp": "temperature",
    "temperature": "temperature",
}

#: Used when no start time is given: a fixed instant, so that imports are reproducible.
DEFAULT_START_TIME = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class Table:
    """Columns of a source, already mapped to vitals.

    Attributes:
        times: Seconds from the start of the record, shape (n,).
        columns: Vital name -> values, shape (n,), NaN where missing.
    """

    times: FloatArray
    columns: dict[str, FloatArray]


def resolve_mapping(names: list[str], mapping: Mapping[str, str] | None) -> dict[str, str]:
    """Return source name -> vital, from `mapping` or else `DEFAULT_NAMES`.

    Raises:
        DataError: A mapped name is absent, a vital is unknown or mapped twice, or none maps.
    """
    if mapping:
        missing = [n for n in mapping if n not in names]
        if missing:
            raise DataError("mapping", f"no column named {missing[0]!r}; have {names}")
        chosen = dict(mapping)
    else:
        chosen = {n: DEFAULT_NAMES[n.lower()] for n in names if n.lower() in DEFAULT_NAMES}
    unknown = [v for v in chosen.values() if v not in VITALS]
    if unknown:
        raise DataError("mapping", f"unknown vital {unknown[0]!r}; known: {sorted(VITALS)}")
    if len(set(chosen.values())) != len(chosen):
        raise DataError("mapping", f"two columns map to the same vital: {chosen}")
    if not chosen:
        raise DataError("mapping", f"no column maps to a vital; use --map (columns: {names})")
    return chosen


def _parse(cell: str, where: str) -> float:
    text = cell.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(where, f"not a number: {text[:40]!r}") from None


def read_csv_table(
    path: Path, *, time_column: str = "time_s", mapping: Mapping[str, str] | None = None
) -> Table:
    """Read a CSV with a time column (seconds) and vital columns.

    Raises:
        DataError: The time column is absent, or a cell is neither empty nor a number.
    """
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if header is None or time_column not in header:
            raise DataError(str(path), f"no time column {time_column!r} in header {header}")
        chosen = resolve_mapping([h for h in header if h != time_column], mapping)
        index = {name: header.index(name) for name in [time_column, *chosen]}
        times: list[float] = []
        values: dict[str, list[float]] = {v: [] for v in chosen.values()}
        for number, row in enumerate(reader, start=2):
            where = f"{path}:{number}"
            t = _parse(row[index[time_column]], where)
            if math.isnan(t):
                continue  # a row without a time cannot be placed
            times.append(t)
            for name, vital in chosen.items():
                cell = row[index[name]] if index[name] < len(row) else ""
                values[vital].append(_parse(cell, where))
    return Table(np.asarray(times), {v: np.asarray(x) for v, x in values.items()})


def read_wfdb_table(record: Path, *, mapping: Mapping[str, str] | None = None) -> Table:
    """Read a PhysioNet WFDB record (path without extension) with `wfdb.rdrecord`."""
    # wfdb calls pandas with arguments pandas has deprecated (at import and in rdrecord); that
    # is wfdb's business and must not become an error under ``filterwarnings = error``.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import wfdb  # imported here: only the WFDB path pays for it

        rec = wfdb.rdrecord(str(record))
    names = [str(n) for n in rec.sig_name]
    chosen = resolve_mapping(names, mapping)
    signals = np.asarray(rec.p_signal, dtype=np.float64)
    times = np.arange(signals.shape[0], dtype=np.float64) / float(rec.fs)
    return Table(times, {v: signals[:, names.index(n)].copy() for n, v in chosen.items()})


def table_samples(
    table: Table,
    *,
    period: float | None = None,
    agg: str = "last",
    zero_is_missing: bool = False,
    require_all: bool = False,
) -> Iterator[tuple[float, dict[str, float]]]:
    """Yield (seconds from start, vitals) per sample, by the module's gap and time policy."""
    if agg not in ("last", "mean"):
        raise ValueError(f"agg must be 'last' or 'mean', not {agg!r}")
    order = np.argsort(table.times, kind="stable")
    times = table.times[order]
    keys = times if period is None else np.floor(times / period)
    bins, inverse = np.unique(keys, return_inverse=True)
    stamps = bins if period is None else bins * period
    merged = np.full((len(bins), len(table.columns)), np.nan)
    for j, values in enumerate(table.columns.values()):
        v = values[order]
        ok = np.isfinite(v)
        if zero_is_missing:
            ok &= v != 0
        b, x = inverse[ok], v[ok]
        if agg == "mean":
            count = np.bincount(b, minlength=len(bins))
            total = np.bincount(b, weights=x, minlength=len(bins))
            merged[count > 0, j] = total[count > 0] / count[count > 0]
        elif len(b):
            # b is sorted (times are), so a bin's last entry is where the next bin begins.
            last = np.flatnonzero(np.r_[b[1:] != b[:-1], True])
            merged[b[last], j] = x[last]
    present = np.isfinite(merged)
    keep = present.all(axis=1) if require_all else present.any(axis=1)
    names = list(table.columns)
    for i in np.flatnonzero(keep):
        row = merged[i]
        yield float(stamps[i]), {n: float(row[j]) for j, n in enumerate(names) if present[i, j]}


@dataclass(frozen=True, slots=True)
class ImportSummary:
    """What an import wrote: counts and the time span, for the command to print."""

    rows: int
    samples: int
    first_t: float | None
    last_t: float | None


def write_samples(
    samples: Iterator[tuple[float, dict[str, float]]],
    out: Path,
    *,
    patient_id: str,
    start_time: float = DEFAULT_START_TIME,
    topic_prefix: str = "vitals",
    source: str = "import",
    rows: int = 0,
) -> ImportSummary:
    """Write samples as single-sample vitals messages; received_at equals the sample time.

    Raises:
        pydantic.ValidationError: The patient id or a time is invalid for the wire schema.
    """
    count, first, last = 0, None, None
    with RecordingWriter(out, source=source, flush_every=10_000) as writer:
        for seq, (offset, vitals) in enumerate(samples):
            t = start_time + offset
            payload = encode_sample(patient_id, t, seq, vitals)
            writer.write(Record(f"{topic_prefix}/{patient_id}", payload, t))
            count += 1
            first = t if first is None else first
            last = t
    return ImportSummary(rows=rows, samples=count, first_t=first, last_t=last)
