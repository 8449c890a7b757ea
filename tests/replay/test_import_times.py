"""Time columns of `monitor import`: seconds, ISO 8601 and other date-times, zones, detection."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.errors import DataError
from monitor.replay.importers import read_csv_table
from monitor.replay.recording import read_recording
from monitor.replay.times import TimeOptions, find_time_column, parse_times

JULY_1_2014 = datetime(2014, 7, 1, tzinfo=UTC).timestamp()  # 1404172800


def _parse(cells: list[str], **options: str) -> np.ndarray:
    parsed = parse_times(cells, list(range(2, len(cells) + 2)), "x.csv", TimeOptions(**options))
    assert parsed.absolute
    return parsed.seconds


@pytest.mark.parametrize(
    "cell",
    [
        "2014-07-01 00:00:05",
        "2014-07-01T00:00:05",
        "2014-07-01T00:00:05Z",
        "2014-07-01T02:00:05+02:00",
        "2014-07-01 00:00:05.000",
        "20140701T000005",
        "2014/07/01 00:00:05",
        "01.07.2014 00:00:05",
        "01-Jul-2014 00:00:05",
        "07/01/2014 12:00:05 AM",
    ],
)
def test_date_time_layouts_read_as_unix_seconds(cell: str) -> None:
    """ISO 8601 in its usual spellings and common export layouts give the same instant."""
    assert _parse([cell]).tolist() == [JULY_1_2014 + 5]


def test_fractional_seconds_are_kept() -> None:
    """Milli- and microseconds survive into the unix time."""
    seconds = _parse(["2014-07-01T00:00:00.250", "2014-07-01 00:00:01.000001"])
    assert seconds[0] == JULY_1_2014 + 0.25
    assert seconds[1] == pytest.approx(JULY_1_2014 + 1.000001, abs=1e-6)


def test_naive_times_use_the_timezone_and_offsets_win() -> None:
    """A naive time is read in --timezone; a time with an offset ignores it."""
    paris = _parse(["2014-07-01 02:00:00"], timezone="Europe/Paris")
    assert paris.tolist() == [JULY_1_2014]  # CEST is UTC+2 in July
    aware = _parse(["2014-07-01T00:00:00+00:00"], timezone="Europe/Paris")
    assert aware.tolist() == [JULY_1_2014]


def test_unknown_timezone_is_a_data_error() -> None:
    """A misspelt zone name is refused by name."""
    with pytest.raises(DataError, match="unknown time zone 'Mars/Olympus'"):
        _parse(["2014-07-01 00:00:00"], timezone="Mars/Olympus")


def test_explicit_strptime_format() -> None:
    """--time-format reads a layout detection would not."""
    seconds = _parse(["2014.182 00:00:07"], time_format="%Y.%j %H:%M:%S")
    assert seconds.tolist() == [JULY_1_2014 + 7]


def test_day_month_order_is_chosen_for_the_whole_column_or_refused_as_ambiguous() -> None:
    """13/07 proves day-first for the column; a column of days <= 12 is ambiguous."""
    day_first = _parse(["01/07/2014 00:00:00", "13/07/2014 00:00:00"])
    assert day_first[0] == JULY_1_2014
    with pytest.raises(DataError, match=r"x\.csv:2: ambiguous date-times.*--time-format"):
        _parse(["01/07/2014 00:00:00", "02/07/2014 00:00:00"])


def test_a_cell_that_breaks_the_column_layout_names_its_line() -> None:
    """One format per column: a cell that does not fit names its line."""
    with pytest.raises(DataError, match=r"x\.csv:4: time 'yesterday' does not match ISO 8601"):
        _parse(["2014-07-01 00:00:00", "2014-07-01 00:00:01", "yesterday"])
    with pytest.raises(DataError, match=r"x\.csv:2: cannot read time 'soon'.*--time-format"):
        _parse(["soon"])


def test_numbers_stay_offsets_and_a_date_among_them_is_an_error() -> None:
    """A numeric column is seconds from the start, as before."""
    parsed = parse_times(["0", "1.5", ""], [2, 3, 4], "x.csv", TimeOptions())
    assert not parsed.absolute
    assert parsed.seconds[:2].tolist() == [0.0, 1.5]
    assert np.isnan(parsed.seconds[2])
    with pytest.raises(DataError, match=r"x\.csv:3: not a number of seconds"):
        parse_times(["0", "2014-07-01"], [2, 3], "x.csv", TimeOptions())


def test_time_column_detection_order_and_explicit_choice() -> None:
    """time_s first, then timestamp/datetime/time/date (any case); --time-column wins."""
    assert find_time_column(["HR", "Timestamp", "date"], None, "f") == "Timestamp"
    assert find_time_column(["date", "time_s"], None, "f") == "time_s"
    assert find_time_column(["when", "HR"], "when", "f") == "when"
    with pytest.raises(DataError, match=r"no time column.*--time-column"):
        find_time_column(["when", "HR"], None, "f")


def _import(src: Path, out: Path, *extra: str) -> Result:
    args = ["import", str(src), "--out", str(out), "--patient-id", "bed-3", *extra]
    return CliRunner().invoke(main, args)


def test_cli_iso_export_becomes_real_times(tmp_path: Path) -> None:
    """The issue's case: a 'timestamp' column of 'YYYY-MM-DD HH:MM:SS' imports at real times."""
    src = tmp_path / "monitor_export.csv"
    src.write_text(
        "timestamp,HR,SpO2\n"
        "2014-07-01 00:00:00,72,97\n"
        "2014-07-01 00:00:01,73,97\n"
        "2014-07-01 00:00:03,75,96\n"
    )
    out = tmp_path / "o.jsonl"
    result = _import(src, out)
    assert result.exit_code == 0, result.output
    assert "times: ISO 8601" in result.output
    messages = [json.loads(r.payload) for r in read_recording(out)]
    assert [m["t"] for m in messages] == [JULY_1_2014, JULY_1_2014 + 1, JULY_1_2014 + 3]
    assert [r.received_at for r in read_recording(out)] == [m["t"] for m in messages]


def test_cli_time_format_and_timezone(tmp_path: Path) -> None:
    """--time-format and --timezone place naive local times on the real clock."""
    src = tmp_path / "local.csv"
    src.write_text("Date Time,HR\n01/07/2014 08:00,60\n01/07/2014 08:01,61\n")
    out = tmp_path / "o.jsonl"
    result = _import(
        src,
        out,
        "--time-column",
        "Date Time",
        "--time-format",
        "%d/%m/%Y %H:%M",
        "--timezone",
        "America/New_York",
    )
    assert result.exit_code == 0, result.output
    expected = datetime(2014, 7, 1, 8, 0, tzinfo=ZoneInfo("America/New_York")).timestamp()
    assert [json.loads(r.payload)["t"] for r in read_recording(out)] == [expected, expected + 60]


def test_cli_refuses_start_time_with_date_times(tmp_path: Path) -> None:
    """Real times are not shifted: --start-time with date-times is a one-line error."""
    src = tmp_path / "iso.csv"
    src.write_text("time,HR\n2014-07-01T00:00:00Z,60\n")
    result = _import(src, tmp_path / "o.jsonl", "--start-time", "0")
    assert result.exit_code == 2
    assert f"{src}: times are date-times (ISO 8601); --start-time is for seconds" in result.output


def test_cli_bad_time_cell_is_a_one_line_error(tmp_path: Path) -> None:
    """The issue's old failure mode now names the line of the cell that does not fit."""
    src = tmp_path / "mixed.csv"
    src.write_text("timestamp,HR\n2014-07-01 00:00:00,60\n2014-07-01 25:00:00,61\n")
    result = _import(src, tmp_path / "o.jsonl")
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert lines == [f"Error: {src}:3: time '2014-07-01 25:00:00' does not match ISO 8601"]


def test_numeric_seconds_still_offset_by_start_time(tmp_path: Path) -> None:
    """time_s columns behave as before: t = --start-time + time_s."""
    src = tmp_path / "s.csv"
    src.write_text("time_s,HR\n0,60\n2.5,61\n")
    table = read_csv_table(src)
    assert not table.absolute
    out = tmp_path / "o.jsonl"
    result = _import(src, out, "--start-time", "1000")
    assert result.exit_code == 0, result.output
    assert [json.loads(r.payload)["t"] for r in read_recording(out)] == [1000.0, 1002.5]


def test_cli_unknown_timezone_is_refused_up_front(tmp_path: Path) -> None:
    """--timezone is checked even for a seconds column, as a one-line error."""
    src = tmp_path / "s.csv"
    src.write_text("time_s,HR\n0,60\n")
    result = _import(src, tmp_path / "o.jsonl", "--timezone", "Europe/Pariss")
    assert result.exit_code == 2
    assert "Error: --timezone: unknown time zone 'Europe/Pariss'" in result.output
    assert not (tmp_path / "o.jsonl").exists()
