"""Recording format: round trip (plain and gzip), binary payloads, truncated tails; blocks
(`read_blocks`) give the same records as `read_recording`."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from pydantic import TypeAdapter, ValidationError

from monitor.core.codec import SingleFields
from monitor.errors import DataError
from monitor.replay.recording import (
    Record,
    RecordingWriter,
    read_blocks,
    read_header,
    read_recording,
)

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


def _block_records(path: Path) -> list[Record]:
    return [
        Record(block.topics[i], block.payloads[i], block.received_at[i])
        for block in read_blocks(path)
        for i in range(len(block))
    ]


def _message(pid: str, seq: int, **extra: object) -> bytes:
    vitals = {"heart_rate": 70.0 + seq / 7, "spo2": 97.25}
    return json.dumps(
        {"v": 1, "patient_id": pid, "t": 1e9 + seq, "seq": seq, "vitals": vitals} | extra
    ).encode()


def _mixed_records(n: int) -> list[Record]:
    """Plain single-sample messages with, among them, every other kind of payload."""
    out = []
    for i in range(n):
        pid = f"p{i % 9}"
        payload = _message(pid, i)
        if i % 53 == 3:
            payload = b"\xff\x00 binary"  # stored as payload_b64
        elif i % 41 == 5:
            payload = b"not json"
        elif i % 37 == 7:
            payload = _message(pid, i, extra_field=1)  # fails the single-sample schema
        elif i % 31 == 9:
            payload = json.dumps({"v": 1, "patient_id": pid, "samples": []}).encode()
        elif i % 29 == 11:
            payload = '{"v":1,"patient_id":"é"}'.encode()
        out.append(Record(f"vitals/{pid}", payload, 1e9 + i + 0.125))
    return out


@pytest.mark.parametrize("name", ["rec.jsonl", "rec.jsonl.gz"])
def test_blocks_hold_the_records_in_order_and_validate_plain_payloads(
    tmp_path: Path, name: str
) -> None:
    """Across many blocks: the same records as `read_recording`, bytes exact; each payload
    that `SingleFields` validates comes validated (equal to validating it alone), every
    other one comes as None."""
    path = tmp_path / name
    records = _mixed_records(20_000)
    _write(path, records)
    blocks = list(read_blocks(path))
    assert len(blocks) > 3
    assert _block_records(path) == records == list(read_recording(path))
    adapter = TypeAdapter(SingleFields)
    seen = {"validated": 0, "not": 0}
    for block in blocks:
        assert block.validated is not None  # each block's lines validated in one call
        for i in range(len(block)):
            given = block.validated[i]
            try:
                expected = adapter.validate_json(block.payloads[i])
            except ValidationError:
                expected = None
            assert given == expected
            seen["validated" if given is not None else "not"] += 1
    assert seen["validated"] > 15_000
    assert seen["not"] > 1_000
    data = path.read_bytes()
    lines = (gzip.decompress(data) if name.endswith(".gz") else data).split(b"\n")
    assert max(b.longest for b in blocks) == max(len(line) for line in lines[1:])


def test_blocks_read_odd_lines_as_read_recording_does(tmp_path: Path) -> None:
    """A header, a blank line, CRLF endings, lines the fast parser refuses, extra keys and a
    cut last line: the records `read_recording` gives, in order."""
    path = tmp_path / "rec.jsonl"
    plain = '{"topic":"vitals/p1","payload":"{}","received_at":%d}'
    lines = ['{"recording": 1, "created_at": 5, "source": "t"}']
    lines += [plain % i for i in range(10)]
    lines += [
        "",
        '{"topic":"vitals/\\ud800","payload":"x","received_at":1}',
        '{"topic":"vitals/a","payload":"{}","received_at":"2.5"}',
        '{"topic":"vitals/b","payload_b64":"/wA=","received_at":3.25}',
        '{"topic":"vitals/c","payload":"{}","received_at":4,"qos":1}',
        '{"topic":"vitals/d","payload":"{}","received_at":true}\r',
    ]
    lines += [plain % i for i in range(10, 20)]
    path.write_text("\n".join(lines) + '\n{"topic":"vitals/p1","payl')
    expected = list(read_recording(path))
    assert len(expected) == 25
    assert _block_records(path) == expected


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ('{"topic":"a","payload":"x","received_at":"soon"}', "bad record"),
        ('{"topic":7,"payload":"x","received_at":1}', "topic is not a string"),
        ("[1, 2]", "must be a JSON object"),
        ("not json", "not JSON"),
    ],
)
def test_blocks_name_a_bad_line_as_read_recording_does(
    tmp_path: Path, line: str, message: str
) -> None:
    """A bad line among plain ones raises DataError naming its line number."""
    path = tmp_path / "rec.jsonl"
    plain = '{"topic":"a","payload":"x","received_at":1}\n'
    path.write_text(plain * 3 + line + "\n" + plain * 3)
    with pytest.raises(DataError, match=rf"rec\.jsonl:4.*{message}"):
        list(read_blocks(path))
