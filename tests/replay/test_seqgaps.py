"""Loss from each patient's seq: gaps counted, duplicates and odd messages kept apart."""

from __future__ import annotations

import json

import pytest

from monitor.core.schema import encode_sample
from monitor.replay import seqgaps
from monitor.replay.seqgaps import SeqGaps


def _single(pid: str, seq: int) -> bytes:
    return encode_sample(pid, 1.7e9 + seq, seq, {"heart_rate": 70.0})


def _block(pid: str, seqs: list[int]) -> bytes:
    samples = [{"t": 1.7e9 + q, "seq": q, "vitals": {"heart_rate": 70.0}} for q in seqs]
    return json.dumps({"v": 1, "patient_id": pid, "samples": samples}).encode()


def test_skipped_seqs_of_each_patient_are_missing_from_its_first_sample_on() -> None:
    """p1 starts at 5 and skips 8 and 9; p2 is complete: 2 lost of 10 expected."""
    gaps = SeqGaps()
    gaps.observe([_single("p1", q) for q in (5, 6, 7, 10)])
    gaps.observe([_single("p2", q) for q in range(6)])
    assert (gaps.loss.received, gaps.loss.missing, gaps.loss.expected) == (10, 2, 12)
    assert gaps.loss.summary() == "lost 2 of 12 samples (16.67 %) by seq gaps"


def test_blocks_and_non_canonical_json_are_read_whole() -> None:
    """A block's seqs (a jump inside it too) and a spaced-out message count like singles."""
    gaps = SeqGaps()
    spaced = b'{ "vitals": {"seq": 1.0}, "seq": 3, "t": 1.7e9, "patient_id": "p1", "v": 1 }'
    gaps.observe([_block("p1", [0, 1]), spaced, _block("p1", [4, 7])])
    assert (gaps.loss.received, gaps.loss.missing) == (5, 3)  # 0 1 3 4 7 received; 2 5 6


def test_duplicates_and_late_samples_are_neither_received_nor_missing() -> None:
    """A redelivered or late sample is `behind`; it does not undo or add a loss."""
    gaps = SeqGaps()
    gaps.observe([_single("p1", q) for q in (0, 1, 3, 3, 2)])
    assert (gaps.loss.received, gaps.loss.missing, gaps.loss.behind) == (3, 1, 2)
    assert "2 at or behind their patient's latest seq" in gaps.loss.summary()


def test_messages_without_patient_and_seq_are_counted_apart() -> None:
    """Not JSON, no id, a bad seq, a deep nest: unparsed, no loss."""
    gaps = SeqGaps()
    bad = [b"\xff", b"[]", b'{"seq":1}', b'{"patient_id":"p","seq":-1}', b"[" * 100_000]
    gaps.observe(bad)
    assert (gaps.loss.unparsed, gaps.loss.expected) == (5, 0)


def test_patients_beyond_the_cap_are_untracked(monkeypatch: pytest.MonkeyPatch) -> None:
    """A flood of ids stops adding patients at MAX_PATIENTS; their samples are untracked."""
    monkeypatch.setattr(seqgaps, "MAX_PATIENTS", 2)
    gaps = SeqGaps()
    gaps.observe([_single(f"p{i}", 0) for i in range(5)])
    assert (gaps.loss.received, gaps.loss.untracked) == (2, 3)
