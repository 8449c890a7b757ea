"""Turn real annotations (beat symbols, flags, timed events) into the evaluator's label CSV.

Sources, and which of their rows become labels (docs/recordings.md, Labels from annotations):

* A CSV with a time column (read like the import's time column) and one of, in this order of
  preference: a ``symbol`` column when anomalous symbols are given explicitly; a boolean
  ``is_anomalous_beat`` column (rows where it is true); a ``symbol`` column (rows whose symbol
  is in `ABNORMAL_BEAT_SYMBOLS`); an ``event`` column (every row with an event).
* A WFDB annotation file, read with `wfdb.rdann` (record path and annotator, e.g. ``atr``):
  annotations whose symbol is anomalous; time = sample / fs.

Each chosen annotation is a point in time and becomes a label ``[t, t + duration]``, except
a pair of event rows ``Initiate X`` ... ``Conclude X`` (also ``Start``/``Begin`` ...
``End``/``Stop``/``Finish``, any case), which becomes one label from the first row's time to
the second's plus the duration: a tilt-table manoeuvre is one event, not two.
"""

from __future__ import annotations

import csv
import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from monitor.errors import DataError
from monitor.replay.csvsource import CsvSource
from monitor.replay.labels import Label
from monitor.replay.times import TimeOptions, find_time_column, parse_times

FloatArray = npt.NDArray[np.float64]

#: PhysioNet beat symbols (wfdb's ``ann_label_table`` entries that label a beat) that are not
#: normal: everything but N (normal), L and R (bundle branch block), e (atrial escape) and
#: j (nodal escape), which AAMI EC57 counts as normal-class beats. Non-beat annotations
#: (rhythm +, noise ~, artifact |, blocked P wave x, flutter [ ! ], comments ", ...) are not beats.
ABNORMAL_BEAT_SYMBOLS = frozenset(
    {"A", "a", "J", "S", "V", "r", "F", "E", "n", "/", "f", "Q", "B", "?"}
)

_TRUE = frozenset({"1", "true", "yes", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "n", "f", ""})


@dataclass(frozen=True, slots=True)
class Points:
    """Chosen annotations, before they become labels.

    Attributes:
        times: Seconds (offsets, or unix seconds when `absolute`), in source order.
        kinds: Label kind of each: ``beat_<symbol>``, ``anomalous_beat`` or ``event``.
        absolute: True when the times were date-times.
        total: Annotations read (chosen or not).
        rule: Which column or rule chose them, for the command's summary.
        ends: End time of each (paired events), in the same units; None: points.
    """

    times: FloatArray
    kinds: list[str]
    absolute: bool
    total: int
    rule: str
    ends: FloatArray | None = None


def _flag(text: str, where: str) -> bool:
    value = text.strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise DataError(where, f"is_anomalous_beat must be 0/1 or true/false, not {text[:20]!r}")


def read_csv_points(
    path: Path,
    *,
    time_column: str | None = None,
    times: TimeOptions | None = None,
    symbols: frozenset[str] | None = None,
    encoding: str = "utf-8",
) -> Points:
    """Choose the anomalous beats or the events of an annotation CSV.

    Args:
        path: The CSV.
        time_column: Its time column; None picks a known name (time_s, timestamp, ...).
        times: How to read date-times.
        symbols: Anomalous symbols; given, the ``symbol`` column decides even when an
            ``is_anomalous_beat`` column exists. None: `ABNORMAL_BEAT_SYMBOLS`.
        encoding: Text encoding.

    Raises:
        DataError: No usable column, a bad flag or time (file and line named).
    """
    with CsvSource(path, encoding=encoding) as source:
        names = {h.lower(): i for i, h in enumerate(source.header)}
        column = source.header.index(find_time_column(source.header, time_column, str(path)))
        symbol = names.get("symbol")
        flag = names.get("is_anomalous_beat")
        event = names.get("event")
        if symbols is not None and symbol is None:
            raise DataError(
                str(path), f"anomalous symbols given but no symbol column in {source.header}"
            )
        if symbol is not None and (symbols is not None or flag is None):
            mode, rule = "symbol", "symbol (MIT-BIH abnormal beats)"
        elif flag is not None:
            mode = rule = "is_anomalous_beat"
        elif event is not None:
            mode = rule = "event"
        else:
            raise DataError(
                str(path),
                f"no symbol, is_anomalous_beat or event column in header {source.header}",
            )
        chosen_symbols = ABNORMAL_BEAT_SYMBOLS if symbols is None else symbols
        cells: list[str] = []
        texts: list[str] = []
        lines: list[int] = []
        kinds: list[str] = []
        total = 0
        for item in source:
            total += 1
            where = f"{path}:{item.line}"
            sym = "" if symbol is None else item.cells[symbol].strip()
            if mode == "symbol":
                chosen, kind = sym in chosen_symbols, f"beat_{sym}"
            elif mode == "is_anomalous_beat":
                assert flag is not None
                chosen = _flag(item.cells[flag], where)
                kind = f"beat_{sym}" if sym else "anomalous_beat"
            else:
                assert event is not None
                text = item.cells[event].strip()
                chosen, kind = bool(text), "event"
                if chosen:
                    texts.append(text)
            if not chosen:
                continue
            text = item.cells[column].strip()
            if not text:
                raise DataError(where, "an annotation without a time")
            cells.append(text)
            lines.append(item.line)
            kinds.append(kind)
    parsed = parse_times(cells, lines, str(path), times or TimeOptions())
    if symbols is not None:  # then the symbol column chose them
        rule = f"symbol in {{{','.join(sorted(symbols))}}}"
    if mode == "event":
        return _paired(Points(parsed.seconds, kinds, parsed.absolute, total, rule), texts)
    return Points(parsed.seconds, kinds, parsed.absolute, total, rule)


_OPENS = ("initiate", "start", "begin")
_CLOSES = ("conclude", "end", "stop", "finish")


def _paired(points: Points, texts: list[str]) -> Points:
    """Join ``Initiate X`` ... ``Conclude X`` event rows into one span each (module doc)."""
    times: list[float] = []
    ends: list[float] = []
    kinds: list[str] = []
    opened: dict[str, int] = {}
    for t, text in zip(points.times.tolist(), texts, strict=True):
        verb, _, what = text.partition(" ")
        key = what.strip().lower()
        if verb.lower() in _CLOSES and key in opened:
            ends[opened.pop(key)] = t
            continue
        if verb.lower() in _OPENS and key:
            opened[key] = len(times)
        times.append(t)
        ends.append(t)
        kinds.append("event")
    return Points(
        np.asarray(times), kinds, points.absolute, points.total, points.rule, np.asarray(ends)
    )


def read_wfdb_points(
    record: Path, *, annotator: str = "atr", symbols: frozenset[str] | None = None
) -> Points:
    """Choose the anomalous beats of a WFDB annotation file (``<record>.<annotator>``).

    Raises:
        DataError: The file is missing or unreadable, or no sampling frequency is known.
    """
    with warnings.catch_warnings():
        # wfdb calls pandas with deprecated arguments; that is wfdb's warning, not ours.
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        import wfdb

        where = f"{record}.{annotator}"
        if not Path(where).exists():
            raise DataError(where, "no such annotation file (record path without extension)")
        try:
            ann = wfdb.rdann(str(record), annotator)
            fs = ann.fs
            if fs is None and Path(f"{record}.hea").exists():
                fs = wfdb.rdheader(str(record)).fs
        except (ValueError, IndexError, OSError) as exc:
            raise DataError(where, f"invalid WFDB annotation file: {exc}") from None
    if fs is None or not math.isfinite(float(fs)) or float(fs) <= 0:
        raise DataError(where, "no sampling frequency (in the annotations or a .hea header)")
    chosen_symbols = ABNORMAL_BEAT_SYMBOLS if symbols is None else symbols
    samples = np.asarray(ann.sample, dtype=np.float64)
    picked = [i for i, s in enumerate(ann.symbol) if s in chosen_symbols]
    return Points(
        samples[picked] / float(fs),
        [f"beat_{ann.symbol[i]}" for i in picked],
        absolute=False,
        total=len(ann.symbol),
        rule=f"symbol in {{{','.join(sorted(chosen_symbols))}}}",
    )


def points_to_labels(
    points: Points,
    *,
    patient_id: str,
    start_time: float,
    duration: float = 0.0,
    vital: str | None = None,
) -> list[Label]:
    """Make one label ``[t, t + duration]`` per point, with t in unix seconds.

    Args:
        points: The chosen annotations.
        patient_id: The patient of the recording the labels go with.
        start_time: Added to offset times (as the import adds it); ignored for date-times.
        duration: Seconds a label lasts after its point.
        vital: The vital the labels concern, or None for any.
    """
    offset = 0.0 if points.absolute else start_time
    ends = points.times if points.ends is None else points.ends
    return [
        Label(patient_id, vital, kind, offset + float(t), offset + float(end) + duration)
        for t, end, kind in zip(points.times, ends, points.kinds, strict=True)
    ]


def write_labels_csv(path: Path, labels: Iterable[Label]) -> int:
    """Write labels in the evaluator's CSV form (`monitor.replay.labels`); return how many."""
    count = 0
    with path.open("w", newline="", encoding="utf-8") as f:
        out = csv.writer(f, lineterminator="\n")
        out.writerow(["patient_id", "start", "end", "vital", "kind", "magnitude"])
        for label in labels:
            magnitude = "" if label.magnitude_sigma is None else repr(label.magnitude_sigma)
            out.writerow(
                [
                    label.patient_id,
                    repr(label.start_t),
                    repr(label.end_t),
                    label.vital or "",
                    label.kind,
                    magnitude,
                ]
            )
            count += 1
    return count


def parse_symbols(text: str) -> frozenset[str]:
    """Read ``--anomalous-symbols``: comma-separated symbols, e.g. ``A,V,F``.

    Raises:
        DataError: No symbol is given.
    """
    symbols = frozenset(s.strip() for s in text.split(",") if s.strip())
    if not symbols:
        raise DataError("--anomalous-symbols", "give symbols separated by commas, e.g. A,V,F")
    return symbols
