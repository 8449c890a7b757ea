"""The registry of known signals: names, units and plausibility bounds.

One place where every signal name is resolved. The built-in vitals (`VITALS`) are always
known; a user registers other signals (an ECG in mV, a central venous pressure, a 0-1
index) in the settings (``signals``), with ``--signal`` on ``monitor import`` and
``monitor train``, or through a model card that lists them. A `Registry` is the built-ins
plus such signals: an immutable value built where those sources are read and passed to the
codec, the importers and the trainer, so a name means the same thing everywhere and no
module holds mutable global state.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

__all__ = [
    "BUILTIN",
    "CLINICAL_VITALS",
    "SIGNAL_NAME_PATTERN",
    "VITALS",
    "Registry",
    "Vital",
    "check_signal",
    "describe",
    "is_signal_name",
    "parse_signal",
]


@dataclass(frozen=True, slots=True)
class Vital:
    """A vital sign the system knows.

    Attributes:
        name: Wire name, used in messages, model cards and metric labels.
        unit: Unit of the values.
        low: Lowest physiologically possible value; anything below is an artifact.
        high: Highest physiologically possible value; anything above is an artifact.
        description: Human-readable name.
        sample_period_s: Seconds between samples the signal is usually recorded at, when
            known (a registered signal may declare it; informational).
        flatline_samples: A run of this many identical consecutive values is a stuck sensor
            (the technical 'flatline' alert); None: the model card's learned rule, else 5.
    """

    name: str
    unit: str
    low: float
    high: float
    description: str
    sample_period_s: float | None = None
    flatline_samples: int | None = None


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


#: What a signal name may look like (built-in vitals and registered signals alike):
#: lowercase letters, digits and underscores, starting with a letter, at most 64 characters.
SIGNAL_NAME_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"

_NAME = re.compile(SIGNAL_NAME_PATTERN)


def is_signal_name(name: str) -> bool:
    """Tell whether `name` has the form of a signal name (`SIGNAL_NAME_PATTERN`)."""
    return _NAME.fullmatch(name) is not None


def check_signal(signal: Vital) -> None:
    """Check a signal for registration.

    Raises:
        ValueError: The name is malformed or a built-in vital's, the bounds are not finite
            with low < high, the period is not positive or the flatline run is below 2.
    """
    name = signal.name
    if not is_signal_name(name):
        raise ValueError(
            f"signal name {name[:40]!r}: lowercase letters, digits and _ only, starting "
            "with a letter, at most 64 characters"
        )
    if name in VITALS:
        raise ValueError(f"signal {name!r} is a built-in vital; choose another name")
    if not (math.isfinite(signal.low) and math.isfinite(signal.high)):
        raise ValueError(f"signal {name!r}: bounds must be finite numbers")
    if not signal.low < signal.high:
        raise ValueError(f"signal {name!r}: need low < high, got {signal.low:g}, {signal.high:g}")
    if signal.sample_period_s is not None and not signal.sample_period_s > 0:
        raise ValueError(f"signal {name!r}: sample period must be > 0")
    if signal.flatline_samples is not None and signal.flatline_samples < 2:
        raise ValueError(f"signal {name!r}: flatline_samples must be >= 2")


class Registry:
    """The built-in vitals plus registered signals; immutable and hashable.

    Iteration gives names: built-ins in `VITALS` order, then registered signals in the
    order given.

    Args:
        signals: Signals to register (each checked by `check_signal`).

    Raises:
        ValueError: A signal fails `check_signal`, or a name is registered twice with
            different definitions.
    """

    __slots__ = ("_all", "known", "registered")

    def __init__(self, signals: Iterable[Vital] = ()) -> None:
        registered: dict[str, Vital] = {}
        for signal in signals:
            check_signal(signal)
            seen = registered.get(signal.name)
            if seen is not None and seen != signal:
                raise ValueError(f"signal {signal.name!r} registered twice, differently")
            registered[signal.name] = signal
        self.registered: tuple[Vital, ...] = tuple(registered.values())
        self._all: dict[str, Vital] = {**VITALS, **registered}
        #: Every known name (a frozenset, for the codec's subset checks).
        self.known: frozenset[str] = frozenset(self._all)

    def __contains__(self, name: object) -> bool:
        return name in self._all

    def __getitem__(self, name: str) -> Vital:
        return self._all[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._all)

    def __len__(self) -> int:
        return len(self._all)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Registry) and self.registered == other.registered

    def __hash__(self) -> int:
        return hash(self.registered)

    def __repr__(self) -> str:
        return f"Registry({[s.name for s in self.registered]})"

    def is_builtin(self, name: str) -> bool:
        """Tell whether `name` is a built-in vital (not a registered signal)."""
        return name in VITALS

    def merge(self, other: Registry) -> Registry:
        """Return a registry with the signals of both; where both have a name, this one's.

        Raises:
            ValueError: The same name has another unit or other bounds in `other`.
        """
        mine = {s.name: s for s in self.registered}
        for signal in other.registered:
            seen = mine.get(signal.name)
            if seen is not None and (seen.unit, seen.low, seen.high) != (
                signal.unit,
                signal.low,
                signal.high,
            ):
                raise ValueError(
                    f"signal {signal.name!r} is defined twice: {describe(seen)} and "
                    f"{describe(signal)}"
                )
        return Registry([*self.registered, *(s for s in other.registered if s.name not in mine)])

    def known_line(self) -> str:
        """One line listing the known names and how to register another."""
        extra = [s.name for s in self.registered]
        known = f"built-in vitals {sorted(VITALS)}" + (f", registered {extra}" if extra else "")
        return (
            f"known: {known} (register another with --signal NAME:UNIT:LOW:HIGH[:PERIOD_S] "
            "or the settings' signals)"
        )


#: The built-in vitals alone.
BUILTIN = Registry()


def describe(signal: Vital) -> str:
    """One line: ``name [low, high] unit``."""
    return f"{signal.name} [{signal.low:g}, {signal.high:g}] {signal.unit}"


def parse_signal(spec: str) -> Vital:
    """Parse a ``--signal`` option: ``NAME:UNIT:LOW:HIGH[:PERIOD_S]``.

    Example: ``ecg_mv:mV:-5:5:0.00278``.

    Raises:
        ValueError: Not that form, a bound or period is not a number, or `check_signal`.
    """
    parts = spec.split(":")
    if len(parts) not in (4, 5) or not parts[0] or not parts[1]:
        raise ValueError(f"expected NAME:UNIT:LOW:HIGH[:PERIOD_S], got {spec[:80]!r}")
    try:
        numbers = [float(p) for p in parts[2:]]
    except ValueError:
        raise ValueError(f"{spec[:80]!r}: LOW, HIGH and PERIOD_S must be numbers") from None
    signal = Vital(
        parts[0],
        parts[1],
        numbers[0],
        numbers[1],
        parts[0],
        numbers[2] if len(numbers) == 3 else None,
    )
    check_signal(signal)
    return signal
