"""The wire schema of vital-sign messages, shared by the simulator and the daemon.

Two forms travel on `vitals/<patient_id>`:

* a single sample: ``{"v": 1, "patient_id": "p0001", "t": 1764000000.0, "seq": 42,
  "vitals": {"heart_rate": 71.8, "spo2": 97.9, ...}}``
* a block of samples for high-rate streams: ``{"v": 1, "patient_id": "p0001",
  "samples": [{"t": ..., "seq": ..., "vitals": {...}}, ...]}``

The JSON Schema in `docs/schemas/` is exported from these models (`monitor schema`).
"""

from __future__ import annotations

from typing import Annotated, Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, field_validator
from pydantic_core import PydanticCustomError

from monitor.core.vitals import SIGNAL_NAME_PATTERN, VITALS, is_signal_name

__all__ = [
    "MAX_BLOCK_SAMPLES",
    "MESSAGE_ADAPTER",
    "PATIENT_ID_PATTERN",
    "SCHEMA_VERSION",
    "FiniteFloat",
    "Message",
    "PatientId",
    "Sample",
    "SampleTime",
    "SequenceNumber",
    "VitalValue",
    "VitalValues",
    "VitalsBlock",
    "VitalsMessage",
    "encode_sample",
    "json_schema",
]

SCHEMA_VERSION: Final = 1

#: Patient ids are allowlisted before any use in a topic, a log line or a path:
#: letters, digits, `_`, `-` and `.`, starting with a letter or digit, at most 64 characters.
PATIENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"

#: Largest number of samples one block message may carry.
MAX_BLOCK_SAMPLES = 1000

# Strict: booleans and strings are not numbers; NaN and +-Infinity (and 1e309, which
# JSON parsers turn into Infinity) are refused.
FiniteFloat = Annotated[float, Field(strict=True, allow_inf_nan=False)]
#: A vital's value: a number, where NaN and +-Infinity (the JSON extensions Python's `json`
#: writes for a sensor's failed reading) pass the schema so that the receiver can judge the
#: one vital, not the message: no bound holds them, so they are that vital's `artifact`
#: (the codec; the sample's other vitals are kept), never a value that reaches a model.
VitalValue = Annotated[float, Field(strict=True, allow_inf_nan=True)]
SampleTime = Annotated[float, Field(strict=True, allow_inf_nan=False, gt=0.0, lt=1e11)]
SequenceNumber = Annotated[int, Field(strict=True, ge=0, lt=2**63)]
PatientId = Annotated[str, Field(strict=True, pattern=PATIENT_ID_PATTERN)]

_STRICT = ConfigDict(extra="forbid", strict=True, frozen=True)


#: The `vitals` object of a sample: signal name -> value (`VitalValue`), or null for a vital
#: not measured (dropped on validation: the same as leaving it out, `_drop_nulls`). The schema
#: checks the names' form only; whether a name is known (a built-in vital or a registered
#: signal) is the codec's check against the served model's registry
#: (`monitor.core.vitals.Registry`).
VitalValues = Annotated[
    dict[str, VitalValue],
    Field(
        json_schema_extra={
            "propertyNames": {"pattern": SIGNAL_NAME_PATTERN},
            "additionalProperties": {"anyOf": [{"type": "number"}, {"type": "null"}]},
        }
    ),
]


def _drop_nulls(value: object) -> object:
    """A vital given as null was not measured: the same as leaving it out (a gateway that
    writes null for a probe that fell off must not lose the sample's other vitals)."""
    if isinstance(value, dict) and None in value.values():
        return {name: v for name, v in value.items() if v is not None}
    return value


def _check_vitals(value: dict[str, float]) -> dict[str, float]:
    # Custom error types let the codec name the reason without parsing message text.
    if not value:
        raise PydanticCustomError("no_vitals", "at least one vital is required")
    for name in value:
        if name not in VITALS and not is_signal_name(name):
            bad = sorted(n[:32] for n in value if n not in VITALS and not is_signal_name(n))
            raise PydanticCustomError(
                "unknown_vital", "unknown vital(s): {names}", {"names": ", ".join(bad[:5])}
            )
    return value


class Sample(BaseModel):
    """One sample of a patient's vitals.

    Attributes:
        t: Sample time, unix seconds.
        seq: Per-patient sequence number, increasing by one per sample.
        vitals: Signal name -> value, in the signal's unit (see `monitor.core.vitals`):
            a built-in vital or a registered signal.
    """

    model_config = _STRICT

    t: SampleTime
    seq: SequenceNumber
    vitals: VitalValues

    _nulls = field_validator("vitals", mode="before")(_drop_nulls)
    _vitals = field_validator("vitals")(_check_vitals)


class VitalsMessage(BaseModel):
    """A single-sample message."""

    model_config = _STRICT

    v: Literal[1]
    patient_id: PatientId
    t: SampleTime
    seq: SequenceNumber
    vitals: VitalValues

    _nulls = field_validator("vitals", mode="before")(_drop_nulls)
    _vitals = field_validator("vitals")(_check_vitals)

    def samples(self) -> list[Sample]:
        """Return the message's samples (one)."""
        return [Sample(t=self.t, seq=self.seq, vitals=self.vitals)]


class VitalsBlock(BaseModel):
    """A block message: several consecutive samples of one patient."""

    model_config = _STRICT

    v: Literal[1]
    patient_id: PatientId
    samples_: list[Sample] = Field(
        alias="samples", min_length=1, max_length=MAX_BLOCK_SAMPLES, serialization_alias="samples"
    )

    def samples(self) -> list[Sample]:
        """Return the block's samples, in message order."""
        return list(self.samples_)


Message = VitalsMessage | VitalsBlock

MESSAGE_ADAPTER: TypeAdapter[VitalsMessage | VitalsBlock] = TypeAdapter(VitalsMessage | VitalsBlock)


def encode_sample(patient_id: str, t: float, seq: int, vitals: dict[str, float]) -> bytes:
    """Encode one single-sample message as compact JSON bytes (the simulator's hot path)."""
    return (
        VitalsMessage(v=SCHEMA_VERSION, patient_id=patient_id, t=t, seq=seq, vitals=vitals)
        .model_dump_json()
        .encode()
    )


def json_schema() -> dict[str, Any]:
    """Return the JSON Schema of a vitals message (either form)."""
    return MESSAGE_ADAPTER.json_schema(by_alias=True)
