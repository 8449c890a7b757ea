"""Raise rules: small objects over the detector's shared state arrays.

Each rule looks at one round of a batch (each patient at most once) after the detector has
updated its state arrays, and returns a vectorised trigger mask ``(rows, F)``: which vitals
of which rows meet it. Where several rules meet one vital, the one with the lowest
`priority` names the raise (the `reason` of its events). The severity of a raise does not
depend on the rule: it is the level of the largest |z| among the vital's last n samples
(`monitor.core.detector`).

A rule is built from the resolved per-vital settings (`Thresholds`) and is left out when
its setting is off (None) for every vital; a vital whose setting is off gets a level no
value can pass. Adding a rule is one class here (listed in `RULES`, its name in
`RuleName`) and one setting in `DetectorConfig` / `VitalOverride` / `Thresholds`
(docs/detection.md).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar, Literal, Protocol, Self, get_args

import numpy as np
import numpy.typing as npt

from monitor.core.types import BoolArray, FloatArray

__all__ = [
    "RAISE_RULES",
    "RULES",
    "Asystole",
    "BeatShape",
    "Evidence",
    "KOfN",
    "Premature",
    "RaiseRule",
    "RuleName",
    "Severe",
    "Shift",
    "Spike",
    "Thresholds",
    "Variance",
    "build_rules",
]

#: Which rule raised a physiological alert (the `reason` of its events).
RuleName = Literal[
    "k_of_n", "severe", "spike", "shift", "variance", "premature", "asystole", "beat_shape"
]
#: Every rule name, in a fixed order (snapshots store a rule as its index here).
RAISE_RULES: tuple[RuleName, ...] = get_args(RuleName)


@dataclass(frozen=True, slots=True)
class Thresholds:
    """The resolved settings of one vital."""

    threshold: float
    k: int
    n: int
    severe: float
    spike: float | None
    clear_below: float
    clear_m: int
    shift_sum: float | None
    shift_n: int
    variance_level: float | None
    variance_alpha: float
    merge_samples: int
    premature: float | None = None
    asystole_s: float | None = None
    beat_shape: float | None = None


@dataclass(slots=True)
class Evidence:
    """The state of one round's rows, as the rules read it (all ``(rows, F)``).

    Attributes:
        absz: |z| of this sample.
        over: |z| above the vital's threshold.
        hist: Exceedance bits of the last n samples (bit j: j samples ago).
        zsum: Sum of the last `shift_n` signed z.
        z2: Exponentially weighted mean of z squared.
        beats: Premature beats confirmed at this sample (`monitor.core.rhythm`); None:
            none in the round.
        asystole: No heartbeat for `asystole_s` at this sample (`monitor.core.rhythm`);
            None: none in the round.
        misshapen: Misshapen beats judged at this sample (`monitor.core.rhythm`); None:
            none in the round.
    """

    absz: FloatArray
    over: BoolArray
    hist: npt.NDArray[np.int64]
    zsum: FloatArray
    z2: FloatArray
    beats: BoolArray | None = None
    asystole: BoolArray | None = None
    misshapen: BoolArray | None = None


class RaiseRule(Protocol):
    """A raise rule: a name, a priority and a vectorised trigger."""

    name: ClassVar[RuleName]
    #: Lower first: the rule that names a raise several rules meet.
    priority: ClassVar[int]
    #: The rule can trigger only on a sample over its vital's threshold: a round of a
    #: batch with no such sample skips it (most rounds; it keeps the batch cheap).
    needs_over: ClassVar[bool]

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self | None:
        """The rule for these vitals' settings (model order), None when it is off for all."""
        ...

    def trigger(self, e: Evidence) -> BoolArray:
        """Which vitals of which rows meet the rule, ``(rows, F)``."""
        ...


def _levels(values: Sequence[float | None]) -> FloatArray | None:
    """Per-vital levels (inf where off), or None when the rule is off for every vital."""
    if all(v is None for v in values):
        return None
    return np.array([np.inf if v is None else v for v in values])


class _RhythmRule:
    """A rule on a flag of the beat rhythm (`monitor.core.rhythm`), on the vitals whose
    `setting` is set (the detector sets it for beat waveforms only). It reads no z."""

    needs_over: ClassVar[bool] = False
    #: The `Thresholds` field that turns the rule on for a vital.
    setting: ClassVar[str]

    def __init__(self, on: BoolArray) -> None:
        self.on = on

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self | None:
        """On where the rule's setting is set."""
        on = np.array([getattr(r, cls.setting) is not None for r in vitals])
        return cls(on) if on.any() else None

    def flags(self, e: Evidence) -> BoolArray | None:
        """The rhythm's flags this rule reads (None: none in the round)."""
        raise NotImplementedError

    def trigger(self, e: Evidence) -> BoolArray:
        """The flagged vitals, where the rule is on."""
        flags = self.flags(e)
        if flags is None:
            return np.zeros(e.over.shape, dtype=np.bool_)
        out: BoolArray = flags & self.on
        return out


class Asystole(_RhythmRule):
    """No heartbeat heard on any of the patient's beat waveforms for `asystole_s`
    (`monitor.core.rhythm`): raised at high severity whatever z says (a flat line is
    easy to predict), and held while the silence lasts."""

    name: ClassVar[RuleName] = "asystole"
    priority: ClassVar[int] = -1
    setting: ClassVar[str] = "asystole_s"

    def flags(self, e: Evidence) -> BoolArray | None:
        """The vitals flagged in asystole."""
        return e.asystole


class Severe:
    """A single |z| above `severe` raises at once."""

    name: ClassVar[RuleName] = "severe"
    needs_over: ClassVar[bool] = True
    priority: ClassVar[int] = 0

    def __init__(self, level: FloatArray) -> None:
        self.level = level

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self:
        """Always on."""
        return cls(np.array([r.severe for r in vitals]))

    def trigger(self, e: Evidence) -> BoolArray:
        """Above `severe` (which the settings keep above the threshold)."""
        out: BoolArray = e.absz > self.level
        return out


class Spike:
    """A single |z| above `spike` raises at once (a one-sample spike below `severe`)."""

    name: ClassVar[RuleName] = "spike"
    needs_over: ClassVar[bool] = True
    priority: ClassVar[int] = 1

    def __init__(self, level: FloatArray) -> None:
        self.level = level

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self | None:
        """On where `spike` is set."""
        level = _levels([r.spike for r in vitals])
        return None if level is None else cls(level)

    def trigger(self, e: Evidence) -> BoolArray:
        """Above `spike` (which the settings keep at or above the threshold)."""
        out: BoolArray = e.absz > self.level
        return out


class KOfN:
    """|z| above `threshold` on k of the last n samples."""

    name: ClassVar[RuleName] = "k_of_n"
    needs_over: ClassVar[bool] = True
    priority: ClassVar[int] = 2

    def __init__(self, k: npt.NDArray[np.int64]) -> None:
        self.k = k

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self:
        """Always on."""
        return cls(np.array([r.k for r in vitals], dtype=np.int64))

    def trigger(self, e: Evidence) -> BoolArray:
        """Over threshold now and on at least k of the last n samples (this one included)."""
        out: BoolArray = e.over & (np.bitwise_count(e.hist) >= self.k)
        return out


class Shift:
    """The signed z of the last `shift_n` samples add up to more than `shift_sum` in size."""

    name: ClassVar[RuleName] = "shift"
    needs_over: ClassVar[bool] = False
    priority: ClassVar[int] = 3

    def __init__(self, level: FloatArray) -> None:
        self.level = level

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self | None:
        """On where `shift_sum` is set."""
        level = _levels([r.shift_sum for r in vitals])
        return None if level is None else cls(level)

    def trigger(self, e: Evidence) -> BoolArray:
        """|sum of the last shift_n z| above `shift_sum`."""
        out: BoolArray = np.abs(e.zsum) > self.level
        return out


class Variance:
    """The exponentially weighted mean of z squared passes `variance_level`."""

    name: ClassVar[RuleName] = "variance"
    needs_over: ClassVar[bool] = False
    priority: ClassVar[int] = 4

    def __init__(self, level: FloatArray) -> None:
        self.level = level

    @classmethod
    def build(cls, vitals: Sequence[Thresholds]) -> Self | None:
        """On where `variance_level` is set."""
        level = _levels([r.variance_level for r in vitals])
        return None if level is None else cls(level)

    def trigger(self, e: Evidence) -> BoolArray:
        """Mean of z squared above `variance_level`."""
        out: BoolArray = e.z2 > self.level
        return out


class Premature(_RhythmRule):
    """A premature beat on a beat waveform (`monitor.core.rhythm`): a beat at least
    `premature` earlier than the median of the recent intervals between beats. It reads
    the beats the rhythm found; z plays no part."""

    name: ClassVar[RuleName] = "premature"
    priority: ClassVar[int] = 5
    setting: ClassVar[str] = "premature"

    def flags(self, e: Evidence) -> BoolArray | None:
        """The beats found premature."""
        return e.beats


class BeatShape(_RhythmRule):
    """A misshapen beat on a beat waveform (`monitor.core.rhythm.BeatShape`): its shape,
    aligned and scaled to fit, differs from the template of the patient's recent beats by
    more than `beat_shape` of the template's norm (a ventricular beat's wide complex,
    whatever its timing). It reads the beats the rhythm judged; z plays no part."""

    name: ClassVar[RuleName] = "beat_shape"
    priority: ClassVar[int] = 6
    setting: ClassVar[str] = "beat_shape"

    def flags(self, e: Evidence) -> BoolArray | None:
        """The beats found misshapen."""
        return e.misshapen


#: Every rule; the settings turn each on or off (`build_rules`).
RULES: tuple[type[RaiseRule], ...] = (
    Asystole,
    Severe,
    Spike,
    KOfN,
    Shift,
    Variance,
    Premature,
    BeatShape,
)


def build_rules(vitals: Sequence[Thresholds]) -> list[RaiseRule]:
    """The rules the settings turn on, by priority."""
    built = [rule for kind in RULES if (rule := kind.build(vitals)) is not None]
    return sorted(built, key=lambda rule: rule.priority)
