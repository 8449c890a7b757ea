"""`monitor simulate --recording` writes the live stream, byte for byte, on a virtual clock."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
from monitor.core.schema import MESSAGE_ADAPTER
from monitor.replay.recording import read_recording


def test_recording_holds_every_sample_with_receive_time_equal_to_sample_time(
    tmp_path: Path,
) -> None:
    """3 patients x 120 s: 360 records, in time order, received_at == t, valid messages."""
    out = tmp_path / "sim.jsonl.gz"
    labels = tmp_path / "labels.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "simulate",
            "--recording",
            str(out),
            "--labels",
            str(labels),
            "--patients",
            "3",
            "--duration",
            "120",
            "--scenario",
            "mixed",
            "--warmup",
            "30",
            "--gap",
            "5",
            "10",
            "--start-time",
            "1700000000",
        ],
    )
    assert result.exit_code == 0, result.output
    records = list(read_recording(out))
    dropped = sum(
        lb["end_seq"] - lb["start_seq"] + 1
        for lb in map(json.loads, labels.read_text().splitlines())
        if lb["kind"] == "dropout"
    )
    assert len(records) == 3 * 120 - dropped
    times = [r.received_at for r in records]
    assert times == sorted(times)
    for record in records:
        message = MESSAGE_ADAPTER.validate_json(record.payload)
        assert record.topic == f"vitals/{message.patient_id}"
        assert record.received_at == message.samples()[-1].t


def test_recording_needs_a_duration(tmp_path: Path) -> None:
    """Without --duration the command refuses with a usage error (exit 2)."""
    result = CliRunner().invoke(main, ["simulate", "--recording", str(tmp_path / "x.jsonl")])
    assert result.exit_code == 2
    assert "--recording needs --duration" in result.output
