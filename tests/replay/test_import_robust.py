"""`monitor import` on damaged or unusual input: one-line errors with exit 2, or acceptance.

Each case goes through the real CLI (click's CliRunner) and checks the exit code, that the
message is one line naming the file (and line), and that no recording is left behind.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.replay.recording import read_recording


def _import(src: Path, out: Path, *extra: str) -> Result:
    args = ["import", str(src), "--out", str(out), "--patient-id", "p1", *extra]
    return CliRunner().invoke(main, args)


def _error_line(result: Result) -> str:
    """The command's error: exactly one line, starting with click's "Error: "."""
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert lines[0].startswith("Error: "), result.output
    assert "Traceback" not in result.output
    return lines[0]


def test_short_row_is_refused_naming_its_line(tmp_path: Path) -> None:
    """A row with fewer fields than the header cannot be placed under its columns."""
    src = tmp_path / "short.csv"
    src.write_text("time_s,HR,SpO2\n0,60,98\n1,61\n2,62,97\n")
    out = tmp_path / "o.jsonl"
    result = _import(src, out)
    assert result.exit_code == 2
    assert _error_line(result) == f"Error: {src}:3: 2 fields, the header has 3"
    assert not out.exists()


def test_latin1_text_is_refused_naming_line_and_byte_or_read_with_encoding(
    tmp_path: Path,
) -> None:
    """Undecodable bytes name the line and byte; --encoding latin-1 reads the file."""
    src = tmp_path / "latin.csv"
    src.write_bytes("time_s,HR,note\n0,60,ok\n1,61,café\n".encode("latin-1"))
    out = tmp_path / "o.jsonl"
    result = _import(src, out)
    assert result.exit_code == 2
    line = _error_line(result)
    assert line.startswith(f"Error: {src}:3: not utf-8 text (byte 0xe9 at column 9)")
    assert "--encoding" in line
    assert not out.exists()
    ok = _import(src, out, "--encoding", "latin-1")
    assert ok.exit_code == 0, ok.output
    assert len(list(read_recording(out))) == 2


def test_unknown_encoding_is_a_one_line_error(tmp_path: Path) -> None:
    """A misspelt encoding name is reported, not a LookupError traceback."""
    src = tmp_path / "a.csv"
    src.write_text("time_s,HR\n0,60\n")
    result = _import(src, tmp_path / "o.jsonl", "--encoding", "latin-9000")
    assert result.exit_code == 2
    assert _error_line(result) == "Error: --encoding: unknown encoding 'latin-9000'"


def test_field_over_the_csv_limit_is_refused_naming_the_line_where_it_starts(
    tmp_path: Path,
) -> None:
    """A 200 KiB field (typically an unclosed quote) names its line, not csv's traceback."""
    src = tmp_path / "big.csv"
    src.write_text("time_s,HR,note\n0,60,a\n1,61," + "x" * (200 * 1024) + "\n")
    result = _import(src, tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert _error_line(result) == (
        f"Error: {src}:3: a field is longer than 131072 characters (an unclosed quote?)"
    )


def test_unclosed_quote_is_reported_at_the_line_where_the_field_opens(tmp_path: Path) -> None:
    """An unclosed quote swallows the rest of the file; the error points at where it opened."""
    src = tmp_path / "quote.csv"
    rows = "".join(f"{i},{60 + i % 5},x\n" for i in range(2, 20_000))
    src.write_text('time_s,HR,note\n0,60,a\n1,61,"oops\n' + rows)
    result = _import(src, tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert _error_line(result).startswith(f"Error: {src}:3: ")


def test_utf8_bom_of_an_excel_export_is_accepted(tmp_path: Path) -> None:
    """Excel's "CSV UTF-8" starts with a byte order mark; the header still reads time_s."""
    src = tmp_path / "excel.csv"
    src.write_bytes(b"\xef\xbb\xbftime_s,HR\r\n0,60\r\n1,61\r\n")
    out = tmp_path / "o.jsonl"
    result = _import(src, out)
    assert result.exit_code == 0, result.output
    payloads = [json.loads(r.payload) for r in read_recording(out)]
    assert [p["vitals"] for p in payloads] == [{"heart_rate": 60.0}, {"heart_rate": 61.0}]


@pytest.mark.parametrize(
    ("text", "extra"),
    [
        ("time_s,HR\n", ()),
        ("time_s,HR\n0,\n1,0\n", ("--zero-is-missing",)),
        ("time_s,HR,SpO2\n0,60,\n", ("--require-all",)),
        ("time_s,HR\n,60\n", ()),
    ],
    ids=["header-only", "all-missing", "require-all", "no-times"],
)
def test_an_import_without_samples_is_refused_and_writes_nothing(
    tmp_path: Path, text: str, extra: tuple[str, ...]
) -> None:
    """Zero samples is exit 2 "no samples", never an empty recording with exit 0."""
    src = tmp_path / "empty.csv"
    src.write_text(text)
    out = tmp_path / "o.jsonl"
    result = _import(src, out, *extra)
    assert result.exit_code == 2
    assert _error_line(result).startswith(f"Error: {src}: no samples: ")
    assert not out.exists()


def test_empty_file_is_refused(tmp_path: Path) -> None:
    """A file without even a header says so."""
    src = tmp_path / "nothing.csv"
    src.write_text("")
    result = _import(src, tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert _error_line(result) == f"Error: {src}: empty file: no header"


def test_missing_source_file_is_a_one_line_error(tmp_path: Path) -> None:
    """A CSV that does not exist: exit 2 naming it."""
    src = tmp_path / "absent.csv"
    result = _import(src, tmp_path / "o.jsonl")
    assert result.exit_code == 2
    assert _error_line(result) == f"Error: {src}: No such file or directory"


def _wfdb_record(tmp_path: Path) -> Path:
    import wfdb

    wfdb.wrsamp(
        "rec",
        fs=4,
        units=["bpm", "%"],
        sig_name=["HR", "SpO2"],
        p_signal=np.column_stack([np.full(8, 60.0), np.full(8, 97.0)]),
        fmt=["16", "16"],
        adc_gain=[100.0, 100.0],
        baseline=[0, 0],
        write_dir=str(tmp_path),
    )
    return tmp_path / "rec"


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_wfdb_header_with_a_huge_sample_count_is_refused_before_reading(tmp_path: Path) -> None:
    """A header claiming 10^14 samples: the .dat size gives it away, no allocation attempted."""
    record = _wfdb_record(tmp_path)
    hea = Path(f"{record}.hea")
    lines = hea.read_text().splitlines()
    fields = lines[0].split()
    fields[3] = "100000000000000"
    hea.write_text("\n".join([" ".join(fields), *lines[1:]]) + "\n")
    out = tmp_path / "o.jsonl"
    result = _import(record, out, "--format", "wfdb")
    assert result.exit_code == 2
    assert _error_line(result) == (
        f"Error: {hea}: header says 100000000000000 samples but rec.dat holds only 8"
    )
    assert not out.exists()


@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_wfdb_malformed_signal_line_names_the_line(tmp_path: Path) -> None:
    """A signal line wfdb cannot parse: one line naming the header line, no traceback."""
    record = _wfdb_record(tmp_path)
    hea = Path(f"{record}.hea")
    lines = hea.read_text().splitlines()
    lines[2] = "rec.dat sixteen"
    hea.write_text("\n".join(lines) + "\n")
    result = _import(record, tmp_path / "o.jsonl", "--format", "wfdb")
    assert result.exit_code == 2
    assert _error_line(result) == (
        f"Error: {hea}:3: invalid WFDB record: invalid syntax in signal line"
    )


def test_wfdb_record_without_header_is_a_one_line_error(tmp_path: Path) -> None:
    """A record path with no .hea says how to name a record."""
    result = _import(tmp_path / "nothing", tmp_path / "o.jsonl", "--format", "wfdb")
    assert result.exit_code == 2
    assert _error_line(result).startswith(f"Error: {tmp_path / 'nothing'}.hea: no such WFDB")
