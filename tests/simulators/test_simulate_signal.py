"""`monitor simulate --signal`: a registered signal published beside the vitals."""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

from monitor.cli import main
from monitor.core.codec import CodecLimits, Decoded
from monitor.core.vitals import CLINICAL_VITALS, Registry, parse_signal
from monitor.replay.recording import read_recording
from tests.support.ingest import decode_one


def test_simulated_registered_signal_stays_in_bounds_and_decodes(tmp_path: Path) -> None:
    """Every message carries the signal, inside its bounds, and the codec accepts it."""
    rec = tmp_path / "sim.jsonl"
    args = [
        "simulate",
        "--patients",
        "2",
        "--rate",
        "10",
        "--duration",
        "20",
        "--recording",
        str(rec),
        "--start-time",
        "1700000000",
        "--signal",
        "icp:mmHg:-5:60",
        "--scenario",
        "mixed",
    ]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    limits = CodecLimits(max_age_s=1e10, signals=Registry([parse_signal("icp:mmHg:-5:60")]))
    values = []
    for record in read_recording(rec):
        decoded = decode_one(
            record.payload,
            topic_patient_id=record.topic.rsplit("/", 1)[1],
            features=(*CLINICAL_VITALS, "icp"),
            now=record.received_at,
            limits=limits,
        )
        assert isinstance(decoded, Decoded), decoded
        values += [s.values[-1] for s in decoded.samples]
    assert len(values) == 400
    assert min(values) >= -5.0
    assert max(values) <= 60.0
    assert max(values) - min(values) > 5.0  # it moves: a sine with noise, not a constant
    first = json.loads(json.loads(rec.read_text().splitlines()[1])["payload"])
    assert list(first["vitals"]) == [*CLINICAL_VITALS, "icp"]
