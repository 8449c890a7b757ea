"""Turn a column of time cells into seconds: numeric offsets or real date-times.

The time policy of `monitor import` (docs/recordings.md):

* A column whose first time is a number holds seconds from the start of the record; the
  importer adds ``--start-time`` to them.
* Otherwise the column holds date-times and they become unix seconds, the real times. An
  explicit ``strptime`` format wins; without one, ISO 8601 (``T`` or space, fractional
  seconds, ``Z`` or ``+hh:mm`` offsets, date only) is tried first, then `COMMON_FORMATS`.
* A date-time without an offset is read in ``--timezone`` (an IANA name, default UTC); one in a
  repeated hour when clocks go back is taken as the first of the two (``fold=0``).
* One format serves the whole column, so ``01/02/2014`` cannot mean 1 February on one line and
  2 January on the next: when both day-first and month-first read every cell, the column is
  ambiguous and the import asks for ``--time-format``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import numpy as np
import numpy.typing as npt

from monitor.errors import DataError

FloatArray = npt.NDArray[np.float64]

#: Header names taken for the time column, in this order, when ``--time-column`` is not given.
TIME_COLUMN_NAMES = ("time_s", "timestamp", "datetime", "date_time", "time", "date", "charttime")


def _with_fractions(formats: Sequence[str]) -> tuple[str, ...]:
    out: list[str] = []
    for fmt in formats:
        out.append(fmt)
        if "%S" in fmt:
            out.append(fmt.replace("%S", "%S.%f"))
    return tuple(out)


#: Date-time layouts tried, after ISO 8601, when no ``--time-format`` is given.
COMMON_FORMATS: tuple[str, ...] = _with_fractions(
    (
        "%Y/%m/%d %H:%M:%S",
        "%Y/%m/%d %H:%M",
        "%d/%m/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M:%S",
        "%d/%m/%Y %H:%M",
        "%m/%d/%Y %H:%M",
        "%m/%d/%Y %I:%M:%S %p",
        "%m/%d/%Y %I:%M %p",
        "%d.%m.%Y %H:%M:%S",
        "%d.%m.%Y %H:%M",
        "%d-%m-%Y %H:%M:%S",
        "%d-%b-%Y %H:%M:%S",
        "%d %b %Y %H:%M:%S",
        "%Y%m%d %H:%M:%S",
    )
)

ISO = "ISO 8601"


@dataclass(frozen=True, slots=True)
class TimeOptions:
    """How to read time cells.

    Attributes:
        time_format: A ``strptime`` format for date-times, or None to detect one.
        timezone: IANA zone for date-times without an offset.
    """

    time_format: str | None = None
    timezone: str = "UTC"

    def zone(self) -> tzinfo:
        """Return the zone of `timezone`.

        Raises:
            DataError: The name is not an IANA time zone.
        """
        if self.timezone.upper() == "UTC":
            return UTC
        try:
            return ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DataError("--timezone", f"unknown time zone {self.timezone!r}") from None


@dataclass(frozen=True, slots=True)
class ParsedTimes:
    """A time column read into seconds.

    Attributes:
        seconds: Seconds per cell (NaN where the cell is empty): offsets when `absolute` is
            False, unix seconds when True.
        absolute: True when the cells were date-times (real times).
        layout: "seconds", "ISO 8601" or the strptime format used.
    """

    seconds: FloatArray
    absolute: bool
    layout: str


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _reader(layout: str) -> Callable[[str], datetime]:
    if layout == ISO:
        return datetime.fromisoformat
    return lambda text: datetime.strptime(text, layout)


def _reads(layout: str, text: str) -> bool:
    try:
        _reader(layout)(text)
    except ValueError:
        return False
    return True


def _to_unix(value: datetime, zone: tzinfo) -> float:
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.timestamp()


def _column(layout: str, cells: Sequence[str], zone: tzinfo) -> tuple[FloatArray, int | None]:
    """Read every cell with one layout; return the seconds and the index of a failing cell."""
    read = _reader(layout)
    out = np.full(len(cells), np.nan)
    for i, text in enumerate(cells):
        if text:
            try:
                out[i] = _to_unix(read(text), zone)
            except ValueError:
                return out, i
    return out, None


def parse_times(
    cells: Sequence[str], lines: Sequence[int], source: str, options: TimeOptions
) -> ParsedTimes:
    """Read a time column: numbers as offsets, or date-times as unix seconds.

    Args:
        cells: The stripped cells of the time column; empty for a row without a time.
        lines: The line of each cell in `source`, for errors.
        source: The file, for errors.
        options: The format and zone for date-times.

    Returns:
        The seconds, NaN for empty cells.

    Raises:
        DataError: A cell does not fit the column's layout, no layout fits, or day/month order
            is ambiguous (the message names the file and line).
    """
    first = next((i for i, text in enumerate(cells) if text), None)
    if first is None:
        return ParsedTimes(np.full(len(cells), np.nan), absolute=False, layout="seconds")
    if options.time_format is None and _is_number(cells[first]):
        out = np.full(len(cells), np.nan)
        for i, text in enumerate(cells):
            if text:
                try:
                    out[i] = float(text)
                except ValueError:
                    raise DataError(
                        f"{source}:{lines[i]}", f"not a number of seconds: {text[:40]!r}"
                    ) from None
                if not math.isfinite(out[i]):
                    raise DataError(f"{source}:{lines[i]}", f"time is not finite: {text[:40]!r}")
        return ParsedTimes(out, absolute=False, layout="seconds")
    zone = options.zone()
    if options.time_format is not None:
        candidates = [options.time_format]
    else:
        candidates = [f for f in (ISO, *COMMON_FORMATS) if _reads(f, cells[first])]
        if not candidates:
            raise DataError(
                f"{source}:{lines[first]}",
                f"cannot read time {cells[first][:40]!r}: not seconds, ISO 8601 or a common "
                "date-time layout; pass --time-format (strptime, e.g. '%d/%m/%Y %H:%M:%S')",
            )
    results: dict[str, FloatArray] = {}
    failure: tuple[str, int] | None = None
    for layout in candidates:
        seconds, bad = _column(layout, cells, zone)
        if bad is None:
            results[layout] = seconds
        elif failure is None or bad > failure[1]:
            failure = (layout, bad)
        if layout == ISO and bad is None:
            break  # ISO reads the column; no other layout is needed
    if not results:
        assert failure is not None
        layout, bad = failure
        shown = "ISO 8601" if layout == ISO else f"format {layout!r}"
        raise DataError(
            f"{source}:{lines[bad]}", f"time {cells[bad][:40]!r} does not match {shown}"
        )
    first_layout, first_seconds = next(iter(results.items()))
    for layout, seconds in results.items():
        if not np.array_equal(seconds, first_seconds, equal_nan=True):
            raise DataError(
                f"{source}:{lines[first]}",
                f"ambiguous date-times: both {first_layout!r} and {layout!r} read the column; "
                "pass --time-format",
            )
    return ParsedTimes(first_seconds, absolute=True, layout=first_layout)


def find_time_column(header: Sequence[str], chosen: str | None, source: str) -> str:
    """Return the time column: `chosen`, or the first of `TIME_COLUMN_NAMES` in the header.

    Raises:
        DataError: `chosen` is absent, or no header name looks like a time.
    """
    if chosen is not None:
        if chosen not in header:
            raise DataError(source, f"no time column {chosen!r} in header {list(header)}")
        return chosen
    lowered = {h.strip().lower(): h for h in header}
    for name in TIME_COLUMN_NAMES:
        if name in lowered:
            return lowered[name]
    raise DataError(
        source,
        f"no time column (looked for {', '.join(TIME_COLUMN_NAMES)}) in header {list(header)}; "
        "pass --time-column",
    )
