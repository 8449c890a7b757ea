"""The recording line written by hand is byte for byte json.dumps' (the format's definition)."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from monitor.replay.recording import Record, RecordingWriter, encode_record, read_recording


def _reference(record: Record) -> str:
    out: dict[str, Any] = {"topic": record.topic}
    try:
        out["payload"] = record.payload.decode("utf-8")
    except UnicodeDecodeError:
        out["payload_b64"] = base64.b64encode(record.payload).decode("ascii")
    out["received_at"] = record.received_at
    return json.dumps(out, separators=(",", ":"), ensure_ascii=False)


@given(
    topic=st.text(max_size=40),
    payload=st.one_of(st.binary(max_size=80), st.text(max_size=80).map(str.encode)),
    received_at=st.floats(min_value=0, max_value=1e11),
)
def test_line_equals_json_dumps(topic: str, payload: bytes, received_at: float) -> None:
    """Any topic, any payload (UTF-8 or not), any receive time: the same line."""
    record = Record(topic, payload, received_at)
    assert encode_record(record) == _reference(record)


def test_write_many_appends_in_order_and_reads_back(tmp_path: Path) -> None:
    """A batch written at once reads back as the records, in order, counted."""
    records = [
        Record(f"vitals/p{i}", b'{"a":"\\u2028\\"x"}' + bytes([i]), 1.5 + i) for i in range(5)
    ]
    with RecordingWriter(tmp_path / "r.jsonl.gz") as writer:
        writer.write_many(records[:3])
        writer.write_many([])
        writer.write_many(records[3:])
    assert writer.count == 5
    assert list(read_recording(tmp_path / "r.jsonl.gz")) == records
