"""The registry of known vital signs: names, units and physiological bounds.

One place for every vital the system knows. The simulator, the message schema, the
trainer and the daemon all read it, so a name means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Vital:
    """A vital sign the system knows.

    Attributes:
        name: Wire name, used in messages, model cards and metric labels.
        unit: Unit of the values.
        low: Lowest physiologically possible value; anything below is an artifact.
        high: Highest physiologically possible value; anything above is an artifact.
        description: Human-readable name.
    """

    name: str
    unit: str
    low: float
    high: float
    description: str


VITALS: dict[str, Vital] = {
    v.name: v
    for v in (
        Vital("heart_rate", "bpm", 10.0, 300.0, "heart rate"),
        Vital("spo2", "%", 40.0, 100.0, "peripheral oxygen saturation"),
        Vital("resp_rate", "/min", 1.0, 80.0, "respiratory rate"),
        Vital("bp_sys", "mmHg", 40.0, 300.0, "systolic blood pressure"),
        Vital("bp_dia", "mmHg", 15.0, 200.0, "diastolic blood pressure"),
        Vital("temperature", "C", 25.0, 45.0, "body temperature"),
        # The seed tutorial's single synthetic signal, sin(t) + 0.2*N(0,1): unitless.
        Vital("seed_signal", "1", -1e6, 1e6, "the seed tutorial's noisy sine"),
    )
}

#: The six clinical vitals the simulator publishes for every patient, in model order.
CLINICAL_VITALS: tuple[str, ...] = (
    "heart_rate",
    "spo2",
    "resp_rate",
    "bp_sys",
    "bp_dia",
    "temperature",
)


def is_plausible(name: str, value: float) -> bool:
    """Tell whether a value is physiologically possible for a known vital.

    Args:
        name: A key of `VITALS`.
        value: The measured value.

    Returns:
        False for values outside the vital's bounds (heart rate 0 or 400, SpO2 above 100).
    """
    vital = VITALS[name]
    return vital.low <= value <= vital.high
