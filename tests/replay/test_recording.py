"""Recording format: round trip (plain and gzip), binary payloads, truncated tails."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from monitor.errors import DataError
from monitor.replay.recording import Record, RecordingWriter, read_header, read_recording

RECORDS = [
    Record("vitals/p1", b'{"v":1,"seq":0}', 1_700_000_000.25),
    Record("vitals/p2", "héllo".encode(), 1_700_000_000.5),
    Record("vitals/p1", b"\xff\x00\xfe binary", 1_700_000_001.0),
]


def _write(path: Path, records: list[Record], **kwargs: object) -> None:
    with RecordingWriter(path, source="test", **kwargs) as writer:  # type: ignore[arg-type]
        for record in records:
            writer.write(record)


@pytest.mark.parametrize("name", ["rec.jsonl", "rec.jsonl.gz"])
def test_round_trip_keeps_every_record_in_order(tmp_path: Path, name: str) -> None:
    """Records read back equal those written, bytes exact, header skipped, for both forms."""
    path = tmp_path / name
    _write(path, RECORDS)
    assert list(read_recording(path)) == RECORDS
    header = read_header(path)
    assert header is not None
    assert (header["recording"], header["source"]) == (1, "test")


def test_gzip_file_is_compressed_and_binary_payload_uses_base64(tmp_path: Path) -> None:
    """A .gz name gives a gzip file; a non-UTF-8 payload is stored as payload_b64."""
    path = tmp_path / "rec.jsonl.gz"
    _write(path, RECORDS)
    lines = gzip.decompress(path.read_bytes()).decode().splitlines()
    assert len(lines) == 4
    assert '"payload_b64":"/wD+IGJpbmFyeQ=="' in lines[3]
    assert '"payload":"héllo"' in lines[2]


def test_truncated_last_line_is_dropped(tmp_path: Path) -> None:
    """A plain file cut in the middle of its last line yields the complete records only."""
    path = tmp_path / "rec.jsonl"
    _write(path, RECORDS)
    data = path.read_bytes()
    path.write_bytes(data[:-10])
    assert list(read_recording(path)) == RECORDS[:2]


def test_truncated_gzip_tail_yields_flushed_records(tmp_path: Path) -> None:
    """A .gz file cut short (no end-of-stream marker) yields every record before the cut."""
    path = tmp_path / "rec.jsonl.gz"
    records = [Record(f"vitals/p{i % 7}", f'{{"seq":{i}}}'.encode(), 1e9 + i) for i in range(500)]
    # Flushing after every 100 records puts sync points in the stream.
    _write(path, records, flush_every=100)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) * 3 // 4])
    got = list(read_recording(path))
    assert 300 <= len(got) < 500
    assert got == records[: len(got)]


def test_corrupt_middle_line_is_an_error(tmp_path: Path) -> None:
    """A line that is not JSON before the last one raises DataError naming the line."""
    path = tmp_path / "rec.jsonl"
    path.write_text('{"topic":"a","payload":"x","received_at":1}\nnot json\n{"topic":"b"}\n')
    with pytest.raises(DataError, match=r"rec\.jsonl:2"):
        list(read_recording(path))


def test_writer_flushes_every_n_records(tmp_path: Path) -> None:
    """After flush_every records the file on disk already holds them, before close."""
    path = tmp_path / "rec.jsonl"
    with RecordingWriter(path, flush_every=2, flush_interval_s=3600) as writer:
        writer.write(RECORDS[0])
        writer.write(RECORDS[1])
        assert list(read_recording(path)) == RECORDS[:2]
        writer.write(RECORDS[2])
    assert list(read_recording(path)) == RECORDS
    assert read_header(path) is None


def test_lines_the_fast_parser_refuses_read_as_json_loads_reads_them(tmp_path: Path) -> None:
    """A lone surrogate escape, a string time and a base64 payload: the same records that
    `json.loads` and `decode_record` give, not an error."""
    path = tmp_path / "rec.jsonl"
    lines = [
        '{"topic":"vitals/\\ud800","payload":"x","received_at":1}',
        '{"topic":"vitals/a","payload":"{}","received_at":"2.5"}',
        '{"topic":"vitals/b","payload_b64":"/wA=","received_at":3.25}',
        '{"topic":"vitals/c","payload":"\\u00e9","received_at":4e0}',
    ]
    path.write_text("\n".join(lines) + "\n")
    assert list(read_recording(path)) == [
        Record("vitals/\ud800", b"x", 1.0),
        Record("vitals/a", b"{}", 2.5),
        Record("vitals/b", b"\xff\x00", 3.25),
        Record("vitals/c", "é".encode(), 4.0),
    ]


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"topic":"a","payload":"\\udc00x","received_at":1}', "bad record"),
        ('{"topic":"a","payload":"x","received_at":"soon"}', "bad record"),
        ('{"topic":"a","payload":"x"}', "bad record"),
        ('{"topic":7,"payload":"x","received_at":1}', "topic is not a string"),
        ("[1, 2]", "must be a JSON object"),
    ],
)
def test_bad_records_still_name_their_line(tmp_path: Path, line: str, message: str) -> None:
    """A record that cannot be built raises DataError with the line number, as before."""
    path = tmp_path / "rec.jsonl"
    path.write_text('{"topic":"a","payload":"x","received_at":1}\n' + line + "\n")
    with pytest.raises(DataError, match=rf"rec\.jsonl:2.*{message}"):
        list(read_recording(path))
