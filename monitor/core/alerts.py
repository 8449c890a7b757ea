"""The alert event contract: what the daemon publishes on `alerts/<patient_id>` (QoS 1).

Physiological alerts come from the detector (a vital's residual left its prediction);
technical alerts come from the data path (signal lost, artifact, clock skew, monitoring
degraded). Both share one model so a consumer parses one shape. The JSON Schema in
`docs/schemas/alert.schema.json` is exported from `AlertEvent` (`alert_json_schema`).
"""

from __future__ import annotations

import hashlib
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.schema import PATIENT_ID_PATTERN
from monitor.core.types import AlertKind, AlertState, Severity

__all__ = [
    "ALERT_SCHEMA_VERSION",
    "TECHNICAL_SEVERITY",
    "AlertEvent",
    "OpenAlertsMessage",
    "alert_json_schema",
    "open_alerts_json_schema",
]

ALERT_SCHEMA_VERSION: Final = 1

#: Default severity of each technical reason the daemon emits.
TECHNICAL_SEVERITY: dict[str, Severity] = {
    "signal_lost": "high",
    "monitoring_degraded": "high",
    # The model's forward raised: the batch's patients were not scored (system-wide).
    "inference_failed": "high",
    # A forward has been running past `model.stall_after_s`: no patient is scored.
    "inference_stalled": "high",
    "artifact": "low",
    "clock_skew": "low",
    "flatline": "medium",
    # A vital the patient sent stops arriving while its other vitals go on.
    "vital_lost": "medium",
    # A patient whose data arrives but who is not monitored (patient cap, every message
    # refused): on its own topic, and once for all of them on alerts/_system.
    "patient_refused": "high",
    "patients_refused": "high",
    # A device clock with a constant offset: monitored, reported once.
    "clock_offset": "low",
    # A patient's window restarted after a gap past the limit (or its device clock set
    # back): its samples are taken but not judged until the window is full again.
    "warming_up": "medium",
    # The daemon is gone: no patient is watched. Only in the system-wide state message
    # (docs/alerts.md, "Monitoring offline"): the broker publishes it for a daemon that
    # died (its last will), the daemon itself at a graceful stop.
    "monitor_offline": "high",
}


class AlertEvent(BaseModel):
    """One alert state change.

    Attributes:
        v: Contract version.
        id: Stable id of this alert state change: the same on every delivery of it
            (a redelivery after a reconnect or a restart), so consumers de-duplicate on it.
            Derived from the event's content (`alert_id`), so live and offline replay give
            the same ids.
        kind: physiological (from residuals) or technical (from the data path).
        patient_id: The patient (allowlisted id); None for a system-wide technical alert
            (monitoring_degraded), published on `alerts/_system`.
        vital: The vital concerned; None for patient-wide technical alerts.
        state: raised, escalated (severity went up while raised), cleared, or expired
            (the daemon stopped watching the alert: a patient it forgot, a restart that
            does not hold it; the last event of that alert).
        severity: low, medium or high (see docs/detection.md).
        t: Sample time of the sample that caused the change, unix seconds (technical:
            the receive time when no sample is involved).
        seq: Sequence number of that sample, None when no sample is involved.
        actual: The measured value (physiological only).
        predicted: The model's prediction for it (physiological only).
        z: (actual - predicted) / residual sigma (physiological only).
        threshold: The vital's raise threshold in sigma units (physiological only).
        model_version: Version of the model card in use.
        reason: Why the alert fired: a technical reason (e.g. signal_lost), or for a
            physiological episode the detector rule that raised it (k_of_n, severe, spike,
            shift, variance, premature, asystole, beat_shape; the same on its escalated
            and cleared events; an episode escalated by asystole takes its name).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = ALERT_SCHEMA_VERSION
    id: str = Field(default="", pattern=r"^[0-9a-f]{32}$")  # filled by `_with_id`
    kind: AlertKind
    patient_id: str | None = Field(pattern=PATIENT_ID_PATTERN)
    vital: str | None
    state: AlertState
    severity: Severity
    t: float
    seq: int | None
    actual: float | None = None
    predicted: float | None = None
    z: float | None = None
    threshold: float | None = None
    model_version: str
    reason: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _with_id(cls, data: Any) -> Any:
        if isinstance(data, dict) and "id" not in data:
            return {**data, "id": alert_id(data)}
        return data

    @classmethod
    def technical(
        cls,
        patient_id: str | None,
        reason: str,
        state: AlertState,
        *,
        t: float,
        model_version: str,
        vital: str | None = None,
        seq: int | None = None,
        severity: Severity | None = None,
    ) -> AlertEvent:
        """Build a technical alert; severity defaults to `TECHNICAL_SEVERITY[reason]` or medium.

        Args:
            patient_id: The patient.
            reason: signal_lost, artifact, clock_skew, monitoring_degraded, ...
            state: raised, cleared or expired.
            t: Sample time, or receive time when no sample is involved.
            model_version: Version of the model card in use.
            vital: The vital concerned, None for patient-wide alerts.
            seq: The sample's sequence number, if any.
            severity: Override of the default severity.
        """
        return cls(
            kind="technical",
            patient_id=patient_id,
            vital=vital,
            state=state,
            severity=severity or TECHNICAL_SEVERITY.get(reason, "medium"),
            t=t,
            seq=seq,
            model_version=model_version,
            reason=reason,
        )

    def to_json(self) -> bytes:
        """Return the compact JSON payload to publish."""
        return self.model_dump_json().encode()


class OpenAlertsMessage(BaseModel):
    """A patient's state message: every alert of the patient still open, retained at
    ``<alerts.state_prefix>/<patient_id>`` (docs/alerts.md, "Open alerts"). A patient with
    none open has no message: the daemon deletes it (an empty retained payload).

    Attributes:
        v: Contract version.
        patient_id: The patient; None for the system-wide alerts' message.
        open: The latest event (raised or escalated) of each open alert, ordered by kind,
            vital and reason.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    v: Literal[1] = ALERT_SCHEMA_VERSION
    patient_id: str | None = Field(pattern=PATIENT_ID_PATTERN)
    open: list[AlertEvent] = Field(min_length=1)

    def to_json(self) -> bytes:
        """Return the compact JSON payload to publish."""
        return self.model_dump_json().encode()


def alert_id(fields: dict[str, Any]) -> str:
    """The stable id of an alert state change: a hash of what identifies it.

    Patient, kind, vital, reason, state, severity, sample time and sequence number, and the
    model version: two deliveries of one decision share it; two decisions never do (one
    patient's vital changes state at most once per sample).
    """
    t, seq = fields.get("t"), fields.get("seq")
    key = "|".join(
        repr(v)
        for v in (
            *(fields.get(n) for n in ("patient_id", "kind", "vital", "reason", "state")),
            fields.get("severity"),
            None if t is None else float(t),  # 1 and 1.0 are one time
            None if seq is None else int(seq),
            fields.get("model_version"),
        )
    )
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def alert_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of an alert event."""
    return AlertEvent.model_json_schema(mode="serialization")


def open_alerts_json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a patient's state message (its open alerts)."""
    return OpenAlertsMessage.model_json_schema(mode="serialization")
