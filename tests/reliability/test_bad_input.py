"""Bad input through decode + pipeline: fuzz, artifacts, hostile ids (items 9-11)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from monitor.core.codec import CodecLimits, Decoded
from monitor.core.vitals import CLINICAL_VITALS
from monitor.engine.pipeline import Pipeline
from tests.core.test_codec_fuzz import NOW, payloads
from tests.reliability.conftest import NORMAL, WINDOW
from tests.reliability.inprocess import (
    counter,
    make_pipeline,
    outcome_total,
    persistence_predictions,
)
from tests.support.ingest import decode_one, ingest_one

_FUZZ: list[Pipeline] = []


def fuzz_pipeline() -> Pipeline:
    """One pipeline shared by all examples (state carries over, as in a live daemon)."""
    if not _FUZZ:
        _FUZZ.append(make_pipeline(model_window=2, ingest={"max_payload_bytes": 4096}))
    return _FUZZ[0]


def check(payload: bytes) -> None:
    """One payload: one outcome per sample (one for a refused payload), no exception, and
    every value that reaches the model (contexts, actuals) finite."""
    pipeline = fuzz_pipeline()
    before = outcome_total(pipeline)
    ingest_one(pipeline, "vitals/p0001", payload, NOW)
    decoded = decode_one(
        payload,
        topic_patient_id="p0001",
        features=CLINICAL_VITALS,
        now=NOW,
        limits=CodecLimits(max_bytes=4096),
    )
    expected = len(decoded.samples) if isinstance(decoded, Decoded) else 1
    jobs = pipeline.drain_all()
    for job in jobs:
        assert np.isfinite(job.context).all()
        assert np.isfinite(job.actual).all()
    if jobs:
        pipeline.score(jobs, persistence_predictions(jobs), NOW, live=False)
    # Queued jobs count as 'scored' once scored: the outcome total then matches exactly.
    assert outcome_total(pipeline) - before == expected


@given(payloads)
def test_pipeline_fuzz(payload: bytes) -> None:
    """Generated payloads through decode + pipeline (as many as the Hypothesis profile says;
    the `slow` variant runs 100k)."""
    check(payload)


@pytest.mark.slow
@pytest.mark.timeout(3600)
@settings(max_examples=100_000, deadline=None, suppress_health_check=list(HealthCheck))
@given(payloads)
def test_pipeline_fuzz_100k(payload: bytes) -> None:
    """The same property over 100,000 generated payloads (issue 7 item 9)."""
    check(payload)


def message(pid: str = "a01", seq: int = 0, t: float = NOW, **vitals: float) -> bytes:
    """A single-sample message with normal vitals."""
    return json.dumps(
        {"v": 1, "patient_id": pid, "t": t, "seq": seq, "vitals": {**NORMAL, **vitals}}
    ).encode()


@pytest.mark.parametrize(
    ("body", "reason", "vital"),
    [
        (message(heart_rate=0.0), "artifact", "heart_rate"),
        (message(heart_rate=400.0), "artifact", "heart_rate"),
        (message(spo2=100.5), "artifact", "spo2"),
        # A failed reading as Python's json writes it (NaN, Infinity): that vital's artifact.
        (message(spo2=float("nan")), "artifact", "spo2"),
        (message(heart_rate=float("-inf")), "artifact", "heart_rate"),
        # Beyond any clock offset the daemon learns (max_clock_offset_s, docs/time.md).
        (message(t=NOW + 7200.0), "clock_skew", None),
        (message(t=NOW - 3 * 86400.0), "clock_skew", None),
    ],
)
def test_impossible_values_are_technical_artifacts(
    body: bytes, reason: str, vital: str | None
) -> None:
    """Impossible vitals and skewed clocks raise a technical alert (never a physiological
    one), enter no window, and clear when a valid sample arrives."""
    pipeline = make_pipeline(model_window=WINDOW)
    events = ingest_one(pipeline, "vitals/a01", body, NOW)
    assert [(e.kind, e.reason, e.vital, e.state) for e in events] == [
        ("technical", reason, vital, "raised")
    ]
    assert counter(pipeline, "monitor_invalid_messages_total", reason=reason) == 1
    assert len(pipeline.windows) == 0
    assert len(pipeline.batcher) == 0
    cleared = ingest_one(pipeline, "vitals/a01", message(seq=1), NOW)
    assert [(e.reason, e.state) for e in cleared] == [(reason, "cleared")]
    physiological = sum(
        s.value
        for m in pipeline.metrics.alerts.collect()
        for s in m.samples
        if s.name == "monitor_alerts_total"
    )
    assert physiological == 0


HOSTILE = [
    "p+1",
    "p#1",
    "a/b",
    "p\x001",
    "$SYS",
    "p\n1",
    "\x1b[31mred",
    "../etc",
    "x" * 65536,
]


@pytest.mark.parametrize("pid", HOSTILE, ids=lambda p: repr(p[:12]))
def test_hostile_patient_ids_are_refused_before_any_use(pid: str) -> None:
    """Ids with MQTT wildcards, separators, NUL, $SYS, newlines, ANSI escapes, ../ or 64 KiB
    are refused by the allowlist: no window, the id in no alert and not in the rejection.
    The topic's patient, whose device sent it, is the one refused (`patient_refused`)."""
    pipeline = make_pipeline(model_window=WINDOW, ingest={"max_payload_bytes": 200_000})
    seen = []
    pipeline._on_reject = seen.append
    events = ingest_one(pipeline, "vitals/ok1", message(pid=pid), NOW)
    assert [(e.patient_id, e.reason) for e in events] == [
        ("ok1", "patient_refused"),
        (None, "patients_refused"),
    ]
    assert [(r.reason, r.patient_id) for r in seen] == [("bad_patient_id", "ok1")]
    assert pid not in seen[0].detail
    assert seen[0].detail.isprintable()
    assert len(pipeline.windows) == 0


def test_topic_mismatch_detail_names_no_id() -> None:
    """A payload whose id differs from the topic's is refused without echoing either id."""
    pipeline = make_pipeline(model_window=WINDOW)
    seen = []
    pipeline._on_reject = seen.append
    ingest_one(pipeline, "vitals/secret01", message(pid="other02"), NOW)
    assert [r.reason for r in seen] == ["topic_mismatch"]
    assert "secret01" not in seen[0].detail
    assert "other02" not in seen[0].detail
