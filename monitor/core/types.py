"""Type aliases shared by the pure core: outcome names, severities and array types.

Every outcome is a plain string from a small fixed set, so the shell can use it directly
as a metric label (`monitor_messages_total{outcome=...}`) without a mapping table.
"""

from __future__ import annotations

from typing import Any, Literal, TypeAlias, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "REJECT_REASONS",
    "AlertKind",
    "AlertState",
    "AnyFloatArray",
    "BoolArray",
    "Float32Array",
    "FloatArray",
    "PushOutcome",
    "RejectReason",
    "Severity",
]

FloatArray: TypeAlias = npt.NDArray[np.float64]
Float32Array: TypeAlias = npt.NDArray[np.float32]
BoolArray: TypeAlias = npt.NDArray[np.bool_]
AnyFloatArray: TypeAlias = npt.NDArray[np.floating[Any]]

#: Why the codec refused a message. Stable names: they are metric label values.
RejectReason: TypeAlias = Literal[
    "too_large",
    "bad_json",
    "bad_schema",
    "bad_patient_id",
    "topic_mismatch",
    "unknown_vital",
    "missing_vital",
    "non_finite",
    "clock_skew",
    "artifact",
]

#: What the window store did with one sample.
PushOutcome: TypeAlias = Literal[
    "warming_up", "ready", "duplicate", "late", "refused_cap", "clock_skew"
]

#: Alert severities, lowest first.
Severity: TypeAlias = Literal["low", "medium", "high"]

#: Life cycle of an alert: raised once, escalated zero or more times, then cleared (its
#: condition ended) or expired (a technical alert of a patient the daemon forgot: it stopped
#: watching the condition, which was never seen to end).
AlertState: TypeAlias = Literal["raised", "escalated", "cleared", "expired"]

#: Physiological alerts come from residuals; technical ones from the data path.
AlertKind: TypeAlias = Literal["physiological", "technical"]

# Derived from the Literal so a new reason cannot be missed here.
REJECT_REASONS: tuple[RejectReason, ...] = get_args(RejectReason)
