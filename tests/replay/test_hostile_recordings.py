"""Hostile recordings and cards: one error line naming the file (and line), exit code 2, no
traceback, in bounded time and memory (`monitor replay --offline`; docs/reliability.md)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from monitor.cli import main
from monitor.model.store import default_model_path
from monitor.replay.recording import MAX_LINE_BYTES, read_recording

START = 1_700_000_000.0
ROOT = Path(__file__).resolve().parents[2]


def _line(i: int, received_at: float | None = None) -> str:
    t = START + i
    vitals = {"heart_rate": 72.0, "spo2": 97.0, "resp_rate": 15.0}
    body = {"v": 1, "patient_id": "p1", "t": t, "seq": i, "vitals": vitals}
    at = t if received_at is None else received_at
    return json.dumps({"topic": "vitals/p1", "payload": json.dumps(body), "received_at": at})


def _text(lines: list[str]) -> bytes:
    return ("\n".join(lines) + "\n").encode()


GOOD = [_line(i) for i in range(5)]


def _replay(path: Path, model: Path | None = None) -> Result:
    args = ["replay", str(path), "--offline", "--model", str(model or default_model_path())]
    return CliRunner().invoke(main, [*args, "--alerts", str(path.parent / "alerts.jsonl")])


def _refused(result: Result, where: str, message: str) -> None:
    """Exit code 2 and exactly one line on stderr: the place (`where`, ``FILE:N``, or
    ``FILE:`` for any line number), then the message."""
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    place = re.escape(where) + (r"\d+" if where.endswith(":") else "")
    assert re.match(f"monitor replay: {place}: ", lines[0]), lines[0]
    assert message in lines[0]


def test_a_receive_time_far_ahead_is_refused_by_the_command(tmp_path: Path) -> None:
    """received_at 1e300 (past 2**53 a float holds no whole seconds; stepping housekeeping
    to it never ended): the real command, in a subprocess, fails in bounded time."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(_text([*GOOD[:3], _line(3, 1e300), GOOD[4]]))
    args = [sys.executable, "-m", "monitor.cli", "replay", str(path), "--offline"]
    args += ["--model", str(default_model_path()), "--alerts", str(tmp_path / "a.jsonl")]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(args, capture_output=True, text=True, timeout=120, env=env, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip() == (
        f"monitor replay: {path}:4: received_at 1e+300 is not a receive time "
        "(unix seconds from 0 to 1e+11)"
    )


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("1e400", "received_at inf is not a receive time"),  # JSON parsers make it infinity
        ("-1", "received_at -1.0 is not a receive time"),
        ("1" + "0" * 400, "OverflowError"),  # an integer no float holds
    ],
)
def test_receive_times_out_of_range_are_refused(tmp_path: Path, value: str, message: str) -> None:
    """Any receive time outside [0, 1e11) is an error at its line."""
    path = tmp_path / "r.jsonl"
    bad = '{"topic":"vitals/p1","payload":"x","received_at":' + value + "}"
    path.write_bytes(_text([*GOOD[:2], bad, *GOOD[2:]]))
    _refused(_replay(path), f"{path}:3", message)


def _deflate(path: Path, head: bytes, filler: bytes, times: int) -> Path:
    """A gzip file: `head`, then `filler` repeated `times` times."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as f:
        f.write(deflate.compress(head))
        for _ in range(times):
            f.write(deflate.compress(filler))
        f.write(deflate.flush())
    return path


def test_a_gzip_bomb_stops_at_the_longest_line_a_record_can_hold(tmp_path: Path) -> None:
    """160 MiB of zero bytes after five records (a file of about 155 KB): the line they
    form is refused as soon as it outgrows the longest record line, not held whole."""
    path = _deflate(tmp_path / "bomb.jsonl.gz", _text(GOOD), b"\0" * (1 << 20), 160)
    assert path.stat().st_size < 200_000
    _refused(_replay(path), f"{path}:6", f"line longer than {MAX_LINE_BYTES:,} bytes")


@pytest.mark.parametrize("blank", [b"\n", b"  \r\n"])
def test_a_bomb_of_blank_lines_is_refused(tmp_path: Path, blank: bytes) -> None:
    """A gigabyte-scale stream of blank lines (here 64 MiB), alone or between records, is
    not split into millions of lines: it is refused."""
    path = _deflate(tmp_path / "blank.jsonl.gz", _text(GOOD), blank * ((64 << 20) // len(blank)), 1)
    _refused(_replay(path), f"{path}:1", "mostly blank lines, not a recording")
    only = _deflate(tmp_path / "only.jsonl.gz", b"", blank * (1 << 20), 64)
    _refused(_replay(only), f"{only}:", "blank lines: not a recording")


def test_corrupt_gzip_is_an_error_at_its_line(tmp_path: Path) -> None:
    """A failed CRC, a plain file named .gz and garbage after the stream are errors; zero
    padding after the stream is read as gzip(1) reads it."""
    good = gzip.compress(_text(GOOD))
    bad_crc = bytearray(good)
    bad_crc[-8] ^= 0xFF  # the CRC-32 in the trailer
    cases = {
        "crc.jsonl.gz": (bytes(bad_crc), ":1", "corrupt gzip data: incorrect data check"),
        "plain.jsonl.gz": (_text(GOOD), ":1", "corrupt gzip data: incorrect header check"),
        "trailing.jsonl.gz": (good + b"garbage", ":6", "corrupt gzip data: incorrect header"),
    }
    for name, (data, line, message) in cases.items():
        path = tmp_path / name
        path.write_bytes(data)
        _refused(_replay(path), f"{path}{line}", message)
    padded = tmp_path / "padded.jsonl.gz"
    padded.write_bytes(good + b"\0" * 1000)
    assert len(list(read_recording(padded))) == 5
    result = _replay(padded)
    assert result.exit_code == 0, result.output


def test_deeply_nested_json_is_an_error_at_its_line(tmp_path: Path) -> None:
    """A line of 100,000 nested '[' is refused at its line (the parser's recursion limit),
    and a payload nested as deep is refused by the codec like any bad payload."""
    path = tmp_path / "r.jsonl"
    path.write_bytes(_text([*GOOD[:2], "[" * 100_000, *GOOD[2:]]))
    _refused(_replay(path), f"{path}:3", "not JSON: nested too deeply")
    nested = json.dumps({"topic": "vitals/p1", "payload": "[" * 60_000, "received_at": START})
    path.write_bytes(_text([*GOOD[:2], nested, *GOOD[2:]]))
    result = _replay(path)
    assert result.exit_code == 0, result.output
    assert "bad_json 1 " in result.stderr


def test_a_card_with_a_huge_window_is_refused_at_load(tmp_path: Path) -> None:
    """window 1e9 in card.json: refused when the card is read, before any allocation."""
    model = tmp_path / "model"
    shutil.copytree(default_model_path(), model)
    card = json.loads((model / "card.json").read_text())
    (model / "card.json").write_text(json.dumps({**card, "window": 1e9}))
    path = tmp_path / "r.jsonl"
    path.write_bytes(_text(GOOD))
    _refused(
        _replay(path, model),
        f"cannot load model {model}",
        "card.json is invalid: window: Input should be less than or equal to 10000",
    )
