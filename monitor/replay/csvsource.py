"""Read the rows of a CSV export with errors that name the file and line.

What a spreadsheet or monitor export may hold, and what becomes of it:

* A UTF-8 byte order mark (Excel's "CSV UTF-8") is dropped.
* Text not in the chosen encoding is an error naming the line and the byte. The encoding is
  UTF-8 by default, else latin-1, cp1252 or another ASCII-compatible one by name (lines are
  split on the newline byte before decoding, so UTF-16 is not read).
* A row with fewer or more fields than the header is an error: its values cannot be placed
  under the right columns. Blank lines are skipped.
* A field over the csv module's limit (131,072 characters unless raised; usually an unclosed
  quote swallowing the lines after it) is an error naming the line where the field starts.
* A file whose name ends in ``.gz`` is read through gzip.
"""

from __future__ import annotations

import codecs
import csv
import gzip
from collections.abc import Iterator
from dataclasses import dataclass
from io import BufferedIOBase
from pathlib import Path

from monitor.errors import DataError


@dataclass(frozen=True, slots=True)
class CsvRow:
    """One data row.

    Attributes:
        row: Data row number, 1-based, header excluded.
        line: Line of the file where the row starts, 1-based.
        cells: The fields, as many as the header has.
    """

    row: int
    line: int
    cells: list[str]


def _open(path: Path) -> BufferedIOBase:
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rb")
    return path.open("rb")


def _decoded(raw: BufferedIOBase, where: str, encoding: str) -> Iterator[str]:
    for number, data in enumerate(raw, start=1):
        if number == 1 and data.startswith(codecs.BOM_UTF8):
            data = data[len(codecs.BOM_UTF8) :]
        try:
            yield data.decode(encoding)
        except UnicodeDecodeError as exc:
            byte = data[exc.start]
            raise DataError(
                f"{where}:{number}",
                f"not {encoding} text (byte 0x{byte:02x} at column {exc.start + 1}); "
                "pass --encoding (e.g. latin-1) or save the file as UTF-8",
            ) from None


class CsvSource:
    """A CSV file read row by row; `header` is read on construction.

    Use as a context manager; iterate for the data rows.

    Raises:
        DataError: (on construction or iteration) the file is empty, undecodable, has a row of
            the wrong width or a field over the limit.
        OSError: The file cannot be opened.
    """

    def __init__(self, path: Path, *, encoding: str = "utf-8") -> None:
        try:
            codecs.lookup(encoding)
        except LookupError:
            raise DataError("--encoding", f"unknown encoding {encoding!r}") from None
        self.path = path
        self._raw = _open(path)
        self._reader = csv.reader(_decoded(self._raw, str(path), encoding))
        self._start = 1
        header = self._next()
        if header is None:
            self._raw.close()
            raise DataError(str(path), "empty file: no header")
        self.header = [h.strip() for h in header]

    def _next(self) -> list[str] | None:
        try:
            while True:
                self._start = self._reader.line_num + 1
                row = next(self._reader, None)
                if row is None or row:  # csv yields [] for a blank line
                    return row
        except csv.Error as exc:
            reason = str(exc)
            if "field larger than field limit" in reason:
                limit = csv.field_size_limit()
                reason = f"a field is longer than {limit} characters (an unclosed quote?)"
            raise DataError(f"{self.path}:{self._start}", reason) from None
        except (OSError, EOFError) as exc:
            # gzip raises these for a damaged or truncated stream
            raise DataError(f"{self.path}:{self._start}", f"cannot read: {exc}") from None

    def __iter__(self) -> Iterator[CsvRow]:
        width = len(self.header)
        number = 0
        while (cells := self._next()) is not None:
            number += 1
            if len(cells) != width:
                raise DataError(
                    f"{self.path}:{self._start}",
                    f"{len(cells)} fields, the header has {width}",
                )
            yield CsvRow(number, self._start, cells)

    def close(self) -> None:
        """Close the file."""
        self._raw.close()

    def __enter__(self) -> CsvSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
