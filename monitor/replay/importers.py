"""Import CSV tables and PhysioNet WFDB records into recordings of vitals messages.

The policy for gaps and irregular times (docs/recordings.md):

* A value is missing when its cell is empty or NaN, or 0 with ``zero_is_missing``.
* Times are seconds from the record's start or real date-times (`monitor.replay.times`).
* Rows are sorted by time. Without a period, each distinct time is one sample at its real time
  (irregular times are kept); rows sharing a time merge, the later row's values winning.
  `merge_rows` counts the rows merged and those the sort moved, and records which sample each
  row went into (the ``--row-map``).
* With a period P, times are binned into ``[k*P, (k+1)*P)`` and each bin becomes one sample
  stamped ``k*P``, holding the last (or mean) finite value of each vital in the bin.
* A sample needs at least one vital (all mapped vitals with ``require_all``); one that has too
  few is skipped. Sequence numbers count emitted samples only (no holes), so a skipped stretch
  shows as a time gap, which the daemon's window treats by its gap limit.
"""

from __future__ import annotations

import csv
import itertools
import math
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from monitor.core.schema import encode_sample
from monitor.core.vitals import BUILTIN, Registry
from monitor.errors import DataError
from monitor.replay.csvsource import CsvSource
from monitor.replay.recording import Record, RecordingWriter
from monitor.replay.times import TimeOptions, find_time_column, parse_times

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

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

#: Spellings of one unit (lower case, spaces removed), for telling whether a signal's stated
#: unit is a vital's: a WFDB ``RESP`` in Ohm or mV is a respiration waveform, not a rate.
_UNIT_SPELLINGS: tuple[frozenset[str], ...] = (
    # "pm" (per minute): MIMIC-II's numerics write their respiration rate so.
    frozenset(
        {"bpm", "/min", "1/min", "min-1", "min^-1", "pm", "permin", "beats/min", "b/min"}
        | {"breaths/min", "br/min", "rpm", "resp/min", "insp/min"}
    ),
    frozenset({"%", "percent", "pct", "%spo2", "%sat"}),
    frozenset({"c", "degc", "°c", "deg_c", "degreesc", "celsius"}),
)
#: Units that state nothing: WFDB writes ``NU`` where a header gives none.
_NO_UNIT = frozenset({"", "nu", "?"})


def _squeezed(unit: str) -> str:
    """A unit as `_UNIT_SPELLINGS` and `_NO_UNIT` list it: lower case, spaces removed."""
    return "".join(unit.split()).lower()


def _unit_key(unit: str) -> str:
    key = _squeezed(unit)
    for spellings in _UNIT_SPELLINGS:
        if key in spellings:
            return min(spellings)
    return key


def unit_conflict(stated: str, expected: str) -> bool:
    """Tell whether a source's `stated` unit contradicts a signal's `expected` one (a unit
    that states nothing contradicts nothing; ``bpm`` and ``/min`` are one unit)."""
    if _squeezed(stated) in _NO_UNIT:
        return False
    return _unit_key(stated) != _unit_key(expected)


#: Used when no start time is given: a fixed instant, so that imports are reproducible.
DEFAULT_START_TIME = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class Table:
    """Columns of a source, already mapped to vitals, one entry per timed source row.

    Attributes:
        times: Seconds per entry, shape (n,): from the start of the record, or unix seconds
            when `absolute`.
        columns: Vital name -> values, shape (n,), NaN where missing.
        rows: Source data row number of each entry (1-based, header excluded), shape (n,).
        source_rows: Data rows in the source, including those without a time.
        absolute: True when `times` are real times (the source had date-times).
        layout: How the times were read: "seconds", "ISO 8601" or a strptime format.
        notes: Lines for the user about how the source was read (each signal's own rate in
            a multi-rate record, a known name left unmapped for its unit).
    """

    times: FloatArray
    columns: dict[str, FloatArray]
    rows: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    source_rows: int = -1
    absolute: bool = False
    layout: str = "seconds"
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Tables built by hand (tests, callers with arrays) number their rows 1..n.
        if len(self.rows) != len(self.times):
            object.__setattr__(self, "rows", np.arange(1, len(self.times) + 1, dtype=np.int64))
        if self.source_rows < 0:
            object.__setattr__(self, "source_rows", len(self.times))


def resolve_mapping(
    names: list[str],
    mapping: Mapping[str, str] | None,
    signals: Registry = BUILTIN,
    units: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """Return source name -> vital, from `mapping` or else `DEFAULT_NAMES`.

    Without a mapping, a column named exactly as a registered signal maps to it too, and a
    name whose stated unit (`units`, a WFDB header's) contradicts its vital's maps to nothing
    (`unmapped_for_unit` says which).

    Args:
        names: The source's column or signal names.
        mapping: Source name -> vital or registered signal, or None.
        signals: Where the target names are resolved.
        units: Source name -> the unit the source states for it, where it states one.

    Raises:
        DataError: A mapped name is absent, a vital is unknown or mapped twice, or none maps.
    """
    skipped: dict[str, str] = {}
    if mapping:
        missing = [n for n in mapping if n not in names]
        if missing:
            raise DataError("mapping", f"no column named {missing[0]!r}; have {names}")
        chosen = dict(mapping)
    else:
        chosen = default_mapping(names, signals)
        skipped = unmapped_for_unit(chosen, signals, units)
        for name in skipped:
            del chosen[name]
    unknown = [v for v in chosen.values() if v not in signals]
    if unknown:
        raise DataError("mapping", f"unknown vital {unknown[0]!r}; {signals.known_line()}")
    if len(set(chosen.values())) != len(chosen):
        raise DataError("mapping", f"two columns map to the same vital: {chosen}")
    if not chosen:
        why = "".join(f"; {n} is in {u}, not a vital's unit" for n, u in skipped.items())
        raise DataError("mapping", f"no column maps to a vital; use --map (columns: {names}){why}")
    return chosen


def default_mapping(names: list[str], signals: Registry) -> dict[str, str]:
    """Source name -> signal by name alone: `DEFAULT_NAMES`, and a registered signal's own
    name."""
    chosen = {n: DEFAULT_NAMES[n.lower()] for n in names if n.lower() in DEFAULT_NAMES}
    chosen.update({n: n for n in names if n in signals and not signals.is_builtin(n)})
    return chosen


def unmapped_for_unit(
    chosen: Mapping[str, str], signals: Registry, units: Mapping[str, str] | None
) -> dict[str, str]:
    """Source name -> its stated unit, for each name of `chosen` whose unit contradicts the
    unit of the signal it names (a known target only)."""
    if not units:
        return {}
    return {
        name: units[name]
        for name, target in chosen.items()
        if name in units and target in signals and unit_conflict(units[name], signals[target].unit)
    }


def _parse(cell: str, where: str) -> float:
    text = cell.strip()
    if not text:
        return math.nan
    try:
        return float(text)
    except ValueError:
        raise DataError(where, f"not a number: {text[:40]!r}") from None


def read_csv_table(
    path: Path,
    *,
    time_column: str | None = None,
    mapping: Mapping[str, str] | None = None,
    times: TimeOptions | None = None,
    encoding: str = "utf-8",
    signals: Registry = BUILTIN,
) -> Table:
    """Read a CSV with a time column and vital columns (docs/recordings.md, Import).

    Args:
        path: The CSV file (``.gz``: gzip-compressed).
        time_column: The time column; None picks the first of `TIME_COLUMN_NAMES` present.
        mapping: Column -> vital; None maps the known names of `DEFAULT_NAMES`.
        times: How to read date-times; seconds need nothing.
        encoding: Text encoding; a UTF-8 byte order mark is dropped either way.
        signals: Where mapped names are resolved (built-ins and registered signals).

    Returns:
        One entry per row with a time; rows without one count in `Table.source_rows` only.

    Raises:
        DataError: No time column, a bad time or value, a malformed row (file and line named).
        OSError: The file cannot be read.
    """
    with CsvSource(path, encoding=encoding) as source:
        header = source.header
        column = find_time_column(header, time_column, str(path))
        chosen = resolve_mapping([h for h in header if h != column], mapping, signals)
        index = {name: header.index(name) for name in [column, *chosen]}
        cells: list[str] = []
        lines: list[int] = []
        rows: list[int] = []
        values: dict[str, list[float]] = {v: [] for v in chosen.values()}
        count = 0
        for item in source:
            count = item.row
            text = item.cells[index[column]].strip()
            if not text:
                continue  # a row without a time cannot be placed
            cells.append(text)
            lines.append(item.line)
            rows.append(item.row)
            where = f"{path}:{item.line}"
            for name, vital in chosen.items():
                values[vital].append(_parse(item.cells[index[name]], where))
    parsed = parse_times(cells, lines, str(path), times or TimeOptions())
    return Table(
        parsed.seconds,
        {v: np.asarray(x, dtype=np.float64) for v, x in values.items()},
        rows=np.asarray(rows, dtype=np.int64),
        source_rows=count,
        absolute=parsed.absolute,
        layout=parsed.layout,
    )


#: Bytes per sample of the uncompressed WFDB signal formats, to check a header's length.
_WFDB_BYTES = {"8": 1.0, "16": 2.0, "24": 3.0, "32": 4.0, "61": 2.0, "80": 1.0, "160": 2.0}
_WFDB_BYTES |= {"212": 1.5, "310": 4 / 3, "311": 4 / 3}


def _import_wfdb() -> Any:
    # wfdb calls pandas with arguments pandas has deprecated (at import and when reading); that
    # is wfdb's business and must not become an error under ``filterwarnings = error``.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import wfdb  # imported here: only the WFDB path pays for it
    return wfdb


def _bad_signal_line(hea: Path) -> int | None:
    """Return the line of the first signal line wfdb's own pattern refuses, if any."""
    from wfdb.io.header import rx_signal

    content = 0
    for number, line in enumerate(hea.read_text(encoding="latin-1").splitlines(), start=1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        content += 1
        if content > 1 and rx_signal.match(line) is None:
            return number
    return None


def _check_wfdb_lengths(record: Path, header: Any) -> None:
    """Refuse a header whose sample count its signal files cannot hold (before allocating)."""
    hea = f"{record}.hea"
    if getattr(header, "file_name", None) is None or header.sig_len is None:
        return  # a multi-segment record: wfdb reads its segments' own headers
    frames: dict[str, float] = {}
    offsets: dict[str, int] = {}
    for i, name in enumerate(header.file_name):
        size = _WFDB_BYTES.get(str(header.fmt[i]))
        if size is None:
            return  # a compressed (FLAC) format: its length cannot be told from its size
        per_frame = header.samps_per_frame[i] if header.samps_per_frame else 1
        frames[name] = frames.get(name, 0.0) + size * (per_frame or 1)
        offsets[name] = (header.byte_offset[i] if header.byte_offset else 0) or 0
    for name, frame_bytes in frames.items():
        path = record.parent / name
        if not path.exists():
            raise DataError(hea, f"signal file {name} is missing")
        held = int(max(path.stat().st_size - offsets[name], 0) / frame_bytes)
        if header.sig_len > held:
            raise DataError(
                hea, f"header says {header.sig_len} samples but {name} holds only {held}"
            )


def read_wfdb_table(
    record: Path, *, mapping: Mapping[str, str] | None = None, signals: Registry = BUILTIN
) -> Table:
    """Read a PhysioNet WFDB record (path without extension) with `wfdb.rdrecord`.

    `mapping` maps signal names to vitals or to signals registered in `signals`.

    Raises:
        DataError: The header is malformed or claims more samples than its files hold, or the
            record cannot be read.
    """
    wfdb = _import_wfdb()
    hea = Path(f"{record}.hea")
    if not hea.exists():
        raise DataError(str(hea), "no such WFDB header (give the record path without extension)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            warnings.simplefilter("ignore", FutureWarning)
            _check_wfdb_lengths(record, wfdb.rdheader(str(record)))
            rec = wfdb.rdrecord(str(record), smooth_frames=False)
    except ValueError as exc:  # wfdb's HeaderSyntaxError is a ValueError
        line = _bad_signal_line(hea) if "signal line" in str(exc) else None
        where = str(hea) if line is None else f"{hea}:{line}"
        raise DataError(where, f"invalid WFDB record: {exc}") from None
    except MemoryError:
        raise DataError(str(hea), "the record does not fit in memory") from None
    names = [str(n) for n in rec.sig_name]
    stated = [str(u) for u in (rec.units or ["NU"] * len(names))]
    units = dict(zip(names, stated, strict=True))
    chosen = resolve_mapping(names, mapping, signals, units)
    if rec.e_p_signal is None:
        raise DataError(str(hea), "the record has no signals")
    notes = _unit_notes(names, units, mapping, chosen, signals)
    if not mapping:
        for name in _implausible_unitless(rec.e_p_signal, names, units, chosen, signals):
            target = signals[chosen.pop(name)]
            notes.append(
                f"{name} (no unit stated) not mapped to {target.name}: its values are not "
                f"in [{target.low:g}, {target.high:g}] {target.unit} (a waveform?); map it "
                "with --map, or register it with --signal, to import it"
            )
        if not chosen:
            raise DataError(str(hea), f"no signal maps to a vital; {notes[-1]}")
    per_frame = [int(k or 1) for k in (rec.samps_per_frame or [1] * len(names))]
    picked = {v: names.index(n) for n, v in chosen.items()}
    # Each signal keeps its own rate: sample k of a signal with m samples per frame is at
    # tick k * (L / m) of the grid of L ticks a frame (L the lcm of the mapped signals' m).
    ticks_per_frame = math.lcm(*(per_frame[i] for i in picked.values()))
    ticks = {
        v: np.arange(len(rec.e_p_signal[i]), dtype=np.int64) * (ticks_per_frame // per_frame[i])
        for v, i in picked.items()
    }
    grid = np.unique(np.concatenate(list(ticks.values())))
    columns: dict[str, FloatArray] = {}
    for v, i in picked.items():
        column = np.full(len(grid), np.nan)
        column[np.searchsorted(grid, ticks[v])] = np.asarray(rec.e_p_signal[i], dtype=np.float64)
        columns[v] = column
    if len(set(per_frame[i] for i in picked.values())) > 1:
        rates = ", ".join(f"{n} {float(rec.fs) * per_frame[names.index(n)]:g} Hz" for n in chosen)
        notes.append(f"signals at their own rates: {rates} (a sample holds those sampled at it)")
    times = grid.astype(np.float64) / (float(rec.fs) * ticks_per_frame)
    return Table(times, columns, notes=tuple(notes))


#: A signal named as a vital but stating no unit is not that vital when at least this
#: share of its non-zero values lies outside the vital's plausible range.
IMPLAUSIBLE_SHARE = 0.9


def _implausible_unitless(
    values: list[Any],
    names: list[str],
    units: Mapping[str, str],
    chosen: Mapping[str, str],
    signals: Registry,
) -> list[str]:
    """The names of `chosen` that state no unit and whose values are nearly all outside
    their vital's plausible range: a respiration waveform named ``RESP`` in a bedside
    record is not breaths a minute (0 is left out: monitors write it for "no value")."""
    out = []
    for name, target in chosen.items():
        if _squeezed(units.get(name, "")) not in _NO_UNIT:
            continue
        x = np.asarray(values[names.index(name)], dtype=np.float64)
        x = x[np.isfinite(x) & (x != 0.0)]
        bounds = signals[target]
        outside = np.count_nonzero((x < bounds.low) | (x > bounds.high))
        if len(x) and outside >= IMPLAUSIBLE_SHARE * len(x):
            out.append(name)
    return out


def _unit_notes(
    names: list[str],
    units: Mapping[str, str],
    mapping: Mapping[str, str] | None,
    chosen: Mapping[str, str],
    signals: Registry,
) -> list[str]:
    """Lines about stated units that are not their signal's: a known name left unmapped, or
    an explicit mapping that contradicts its unit."""
    if mapping:
        return [
            f"WARNING: {n} is in {u}, {chosen[n]} in {signals[chosen[n]].unit}: the values are "
            "taken as they are"
            for n, u in unmapped_for_unit(chosen, signals, units).items()
        ]
    known = default_mapping(names, signals)
    return [
        f"{n} ({u}) not mapped to {known[n]} ({signals[known[n]].unit}): another unit; "
        f"register it with --signal NAME:UNIT:LOW:HIGH and --map {n}=NAME to import it"
        for n, u in unmapped_for_unit(known, signals, units).items()
    ]


@dataclass(frozen=True, slots=True)
class Merged:
    """A table's rows merged into samples, with where each row went.

    Attributes:
        times: Time of each sample (as the table's times: offsets or unix seconds), shape (k,).
        values: Sample x vital values, NaN where absent, shape (k, m).
        names: The vitals, in the columns' order.
        row_sample: For each table entry, the index of the sample it went into, or -1 when that
            sample was skipped (no values), shape (n,).
        merged: Rows that went into a sample with an earlier row (same time, or same bin
            with a period).
        moved: Rows earlier in time than a row above them (put in order by the sort).
    """

    times: FloatArray
    values: FloatArray
    names: list[str]
    row_sample: IntArray
    merged: int
    moved: int

    def samples(self) -> Iterator[tuple[float, dict[str, float]]]:
        """Yield (time, vitals) per sample, each with the vitals that have a value."""
        present = np.isfinite(self.values)
        for i in range(len(self.times)):
            row = self.values[i]
            vitals = {n: float(row[j]) for j, n in enumerate(self.names) if present[i, j]}
            yield float(self.times[i]), vitals


def merge_rows(
    table: Table,
    *,
    period: float | None = None,
    agg: str = "last",
    zero_is_missing: bool = False,
    require_all: bool = False,
) -> Merged:
    """Merge a table's rows into samples by the module's gap and time policy."""
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
    # Emitted samples are numbered 0, 1, ... over kept bins; a skipped bin has none.
    sample_of_bin = np.where(keep, np.cumsum(keep) - 1, -1)
    row_sample = np.empty(len(order), dtype=np.int64)
    row_sample[order] = sample_of_bin[inverse]
    running_max = np.maximum.accumulate(table.times) if len(table.times) else table.times
    moved = int(np.count_nonzero(table.times[1:] < running_max[:-1]))
    return Merged(
        times=np.asarray(stamps[keep], dtype=np.float64),
        values=merged[keep],
        names=list(table.columns),
        row_sample=row_sample,
        merged=len(table.times) - len(bins),
        moved=moved,
    )


def table_samples(
    table: Table,
    *,
    period: float | None = None,
    agg: str = "last",
    zero_is_missing: bool = False,
    require_all: bool = False,
) -> Iterator[tuple[float, dict[str, float]]]:
    """Yield (time, vitals) per sample, by the module's gap and time policy."""
    return merge_rows(
        table, period=period, agg=agg, zero_is_missing=zero_is_missing, require_all=require_all
    ).samples()


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

    Args:
        samples: (time, vitals) pairs; the message time is ``start_time + time``.
        out: The recording to write; nothing is written when there are no samples.
        patient_id: For the topic and the messages.
        start_time: Added to each time (0 for times that are already unix seconds).
        topic_prefix: Topic is ``<prefix>/<patient_id>``.
        source: The recording header's source.
        rows: Source rows, for the summary.

    Raises:
        DataError: There are no samples (an empty recording would pass for a real one).
        pydantic.ValidationError: The patient id or a time is invalid for the wire schema.
    """
    items = iter(samples)
    head = next(items, None)
    if head is None:
        raise DataError(str(out), "no samples to write; nothing written")
    count, first, last = 0, None, None
    with RecordingWriter(out, source=source, flush_every=10_000) as writer:
        for seq, (offset, vitals) in enumerate(itertools.chain([head], items)):
            t = start_time + offset
            payload = encode_sample(patient_id, t, seq, vitals)
            writer.write(Record(f"{topic_prefix}/{patient_id}", payload, t))
            count += 1
            first = t if first is None else first
            last = t
    return ImportSummary(rows=rows, samples=count, first_t=first, last_t=last)


def write_row_map(path: Path, table: Table, merged: Merged, start_time: float) -> int:
    """Write ``row,seq,t``: each source data row -> the sample it went into and its time.

    Rows without a time, and rows whose sample was skipped (no values), have empty seq and t.

    Returns:
        The number of rows written (the source's data rows).
    """
    seq = np.full(table.source_rows + 1, -1, dtype=np.int64)
    seq[table.rows] = merged.row_sample
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["row", "seq", "t"])
        for row in range(1, table.source_rows + 1):
            s = int(seq[row])
            if s < 0:
                out.writerow([row, "", ""])
            else:
                out.writerow([row, s, repr(start_time + float(merged.times[s]))])
    return table.source_rows
