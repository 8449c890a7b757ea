"""The one path of each stage, for a single message or sample: a batch of one."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from monitor.core.alerts import AlertEvent
from monitor.core.codec import DEFAULT_LIMITS, CodecLimits, Decoded, Rejection, decode
from monitor.core.windows import PushResult, WindowStore
from monitor.engine.pipeline import Pipeline
from monitor.transports.mqtt.topics import patient_of


def ingest_one(pipeline: Pipeline, topic: str, payload: bytes, now: float) -> list[AlertEvent]:
    """Decode and ingest one MQTT message; return the alert changes it caused."""
    nows = [now]
    return pipeline.ingest(pipeline.decode([patient_of(topic)], [payload], nows), nows)


def decode_one(
    payload: bytes,
    *,
    topic_patient_id: str | None,
    features: Sequence[str],
    now: float,
    limits: CodecLimits = DEFAULT_LIMITS,
) -> Decoded | Rejection:
    """The codec's verdict on one payload."""
    columns = decode([payload], [topic_patient_id], [now], features=features, limits=limits)
    return columns.results()[0]


def push_one(
    store: WindowStore, patient_id: str, t: float, seq: int, values: object, now: float
) -> PushResult:
    """Push one sample into the store; return what happened to it."""
    row = np.asarray(values, dtype=np.float64).reshape(1, -1)
    return store.push([patient_id], [t], [seq], row, [now]).result(0)
