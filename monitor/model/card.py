"""The model card: everything needed to serve and judge a model, stored as ``card.json``.

Every field is documented in ``docs/model-card.md``. The card is validated on load
(pydantic, unknown keys refused), so a card that does not describe a usable model fails
before any weight is read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from monitor.core.vitals import VITALS, Registry, Vital, check_signal
from monitor.model.features import Centring

__all__ = [
    "DEFAULT_ARCHITECTURE",
    "FEW_RAISES_MAX_GAIN",
    "FORMAT_VERSION",
    "MAX_WINDOW",
    "MIN_RAISES",
    "Calibration",
    "FeatureMetrics",
    "FlatlineRule",
    "Hyperparameters",
    "Metrics",
    "ModelCard",
    "Normalisation",
    "Pooling",
    "RhythmSpec",
    "Scalar",
    "SignalSpec",
    "TrainingInfo",
    "VitalCalibration",
    "signal_specs",
]

#: Version of the card.json layout; bumped on any incompatible change.
FORMAT_VERSION: Literal[1] = 1

Scalar = str | int | float | bool | None

#: Longest window a card may declare: the window store preallocates `window` samples for
#: each of up to `window.max_patients` patients (10,000 x 10,000 x 6 float32 is 2.4 GB),
#: and a larger one (a hostile card) would fail only at that allocation.
MAX_WINDOW = 10_000


#: The architecture of a card that names none (every card written before the field).
DEFAULT_ARCHITECTURE = "medical-lstm"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Hyperparameters(_Strict):
    """The architecture's sizes (for `MedicalLSTM`: its constructor arguments).

    Every architecture reads `input_size` and `output_size`; `hidden_size` and
    `num_layers` mean what the architecture says (docs/model-card.md).
    """

    input_size: int = Field(ge=1)
    hidden_size: int = Field(ge=1)
    num_layers: int = Field(ge=1)
    output_size: int = Field(ge=1)


class Normalisation(_Strict):
    """Per-feature z-score statistics, in feature order, raw units.

    With ``centring = "window_mean"`` each window's own per-feature mean is subtracted first
    (and added back to the output), with ``"last"`` its last sample; `mean` and `std` then
    describe centred values.
    """

    mean: list[float]
    std: list[float]
    centring: Centring = "none"


class Pooling(_Strict):
    """How a window is shortened before the LSTM (`monitor.model.features.pool_window`)."""

    recent: int = Field(ge=1)
    block: int = Field(ge=1)


class TrainingInfo(_Strict):
    """How the model was trained: recipe, seed, optimiser settings and data."""

    recipe: str
    seed: int
    epochs: int = Field(ge=0)
    batch_size: int = Field(ge=1)
    lr: float = Field(gt=0)
    data: str
    details: dict[str, Scalar] = Field(default_factory=dict)


class FeatureMetrics(_Strict):
    """Test-split errors of one feature (or all features pooled), in raw units."""

    test_rmse: float
    persistence_rmse: float
    noise_floor_rmse: float | None
    n_test: int = Field(ge=0)


class Metrics(_Strict):
    """Test metrics overall and per feature, plus recipe-specific extras."""

    overall: FeatureMetrics
    per_feature: dict[str, FeatureMetrics]
    extra: dict[str, float] = Field(default_factory=dict)


class SignalSpec(_Strict):
    """A registered (not built-in) signal the model was trained on: its unit and bounds."""

    unit: str = Field(min_length=1)
    low: float
    high: float
    sample_period_s: float | None = Field(default=None, gt=0)
    description: str = ""
    flatline_samples: int | None = Field(default=None, ge=2)

    def vital(self, name: str) -> Vital:
        """This signal as a registry entry named `name`."""
        return Vital(
            name,
            self.unit,
            self.low,
            self.high,
            self.description or name,
            self.sample_period_s,
            self.flatline_samples,
        )


def signal_specs(features: Sequence[str], signals: Registry) -> dict[str, SignalSpec]:
    """The card's `signals`: each registered (not built-in) feature, as `signals` defines it.

    Raises:
        KeyError: A feature `signals` does not know.
    """
    out: dict[str, SignalSpec] = {}
    for name in features:
        if signals.is_builtin(name):
            continue
        v = signals[name]
        out[name] = SignalSpec(
            unit=v.unit,
            low=v.low,
            high=v.high,
            sample_period_s=v.sample_period_s,
            description="" if v.description == name else v.description,
            flatline_samples=v.flatline_samples,
        )
    return out


class FlatlineRule(_Strict):
    """What training learned about a feature's exact repeats (`monitor.training.repeats`).

    Attributes:
        normal_run: The run of identical consecutive values that 99.9 % of the training
            samples do not exceed (1 for a signal that never repeats).
        longest_run: The longest such run in the training data.
        repeat_share: Share of training samples equal to the sample before them.
        resolution: Smallest step between distinct values in the training data, raw
            units (the quantisation); None when fewer than two distinct values.
        samples: A run of this many identical values raises 'flatline':
            ``max(5, 2 * normal_run)``, or the registered signal's `flatline_samples`. A
            sparse signal (mostly zeros, in long runs) has a long normal run, so the rule
            in effect never fires for it.
    """

    normal_run: int = Field(ge=1)
    longest_run: int = Field(ge=1)
    repeat_share: float = Field(ge=0, le=1)
    resolution: float | None = Field(default=None, gt=0)
    samples: int = Field(ge=2)


class RhythmSpec(_Strict):
    """A feature that training found to be a beat waveform (`monitor.training.rhythm`): an
    ECG lead, an arterial pressure or a pleth, sampled fast, whose training rows beat
    regularly or repeat one beat shape. Serving follows its beats (`monitor.core.rhythm`).

    Attributes:
        beats: Beats found in the training rows after each segment's first: the number of
            intervals between beats (`monitor.training.rhythm.MIN_BEATS` at least).
        interval_s: Their median interval, seconds.
        regular_share: Share of intervals within 25 % of the median, or of an ectopic pair
            (`monitor.training.rhythm.regular_share`).
        shape_distance: The median distance of the training beats' shapes from the
            template of the beats before them (`monitor.core.rhythm.BeatShape`); None: a
            card written before the field.
        ectopy: How serving tells an ectopic beat on it: `timing` (a regular rhythm: a
            premature beat, the `premature` rule), `shape` (an ECG lead in an irregular
            rhythm, such as atrial fibrillation, whose beats repeat one shape: a misshapen
            beat, the `beat_shape` rule) or `none` (a pulse wave in an irregular rhythm:
            no ectopic beat is judged). Asystole is judged on all three.
    """

    beats: int = Field(ge=1)
    interval_s: float = Field(gt=0)
    regular_share: float = Field(ge=0, le=1)
    shape_distance: float | None = Field(default=None, ge=0)
    ectopy: Literal["timing", "shape", "none"] = "timing"


#: Tail probability above which a count of raises at gain 1 is taken as chance, not excess.
_EXCESS_P = 0.01

#: Fewer raises than this at gain 1 are too few to fit a tail: a handful of raises may be
#: real events in the training data, and they say nothing about the shape of a tail.
MIN_RAISES = 5

#: With fewer than `MIN_RAISES` raises, the gain is the smallest measured one (up to this)
#: at which the count is within chance of the target: raises that vanish by then are the
#: noise brushing the fixed levels; raises that outlast twice the levels are large
#: deviations, possibly real events, and a gain that hid them would hide events as large.
FEW_RAISES_MAX_GAIN = 2.0


def _poisson_upper(mean: float) -> int:
    """Smallest count c with P(X > c) <= _EXCESS_P (0.01) for X ~ Poisson(mean)."""
    if mean > 100.0:
        # exp(-mean) underflows for large means; the normal approximation (its 99th
        # percentile) is close there.
        return math.ceil(mean + 2.3263 * math.sqrt(mean))
    term = cdf = math.exp(-mean)
    c = 0
    while 1.0 - cdf > _EXCESS_P:
        c += 1
        term *= mean / c
        cdf += term
    return c


class VitalCalibration(_Strict):
    """The detector's raise count on one vital's training data as a function of its gain.

    Attributes:
        raises: Raises (episodes) at each of `Calibration.gains`, z divided by the gain.
        intercept: ``ln(raises per day) = intercept + slope * gain``, fitted over the grid
            points with 1 to 200 raises (the tail); None when fewer than two such points.
        slope: The fit's slope (negative); None with `intercept`.
    """

    raises: list[int]
    intercept: float | None = None
    slope: float | None = Field(default=None, lt=0)

    @model_validator(mode="after")
    def _fit_whole(self) -> VitalCalibration:
        if (self.intercept is None) != (self.slope is None):
            raise ValueError("intercept and slope are given together or not at all")
        if any(c < 0 for c in self.raises):
            raise ValueError(f"raises must be >= 0: {self.raises}")
        return self


class Calibration(_Strict):
    """Alarm calibration measured at training time (`monitor.training.calibration`).

    Attributes:
        gains: The gain grid, increasing, from 1.
        days: Scored samples per vital times the sample period, in days: what the raise
            counts are counts of.
        per_vital: Feature name -> its raise counts and fitted tail.
    """

    gains: list[float] = Field(min_length=1)
    days: float = Field(gt=0)
    per_vital: dict[str, VitalCalibration]

    @model_validator(mode="after")
    def _grid(self) -> Calibration:
        g = self.gains
        if g[0] != 1.0 or any(b <= a for a, b in pairwise(g)):
            raise ValueError(f"calibration.gains must increase from 1.0: {g}")
        for name, vital in self.per_vital.items():
            if len(vital.raises) != len(g):
                raise ValueError(
                    f"calibration of {name}: {len(vital.raises)} counts, {len(g)} gains"
                )
        return self

    def gain(self, vital: str, per_day: float, max_gain: float) -> float:
        """The gain that brings `vital`'s raise rate to `per_day`, within ``[1, max_gain]``.

        Gain 1 when the count at gain 1 is within chance of the target (a Poisson count
        above its 99th percentile is excess) or 1. Below `MIN_RAISES` raises (no tail to fit),
        the smallest measured gain up to `FEW_RAISES_MAX_GAIN` whose count is within chance,
        else 1. Else the fitted tail's gain at the target; with no fit, the smallest
        measured gain whose rate is within the target, else `max_gain`.
        """
        v = self.per_vital[vital]
        chance = _poisson_upper(per_day * self.days)
        if v.raises[0] <= max(chance, 1):  # one raise may be one real event
            return 1.0
        if v.raises[0] < MIN_RAISES:
            few = zip(self.gains, v.raises, strict=True)
            g = next((a for a, c in few if a <= FEW_RAISES_MAX_GAIN and c <= chance), 1.0)
            return min(g, max_gain)
        if v.intercept is not None and v.slope is not None:
            g = (math.log(per_day) - v.intercept) / v.slope
        else:
            g = next(
                (a for a, c in zip(self.gains, v.raises, strict=True) if c / self.days <= per_day),
                max_gain,
            )
        return min(max(g, 1.0), max_gain)

    def gains_for(
        self, features: Sequence[str], per_patient_day: float, max_gain: float
    ) -> list[float]:
        """Each feature's gain for a budget of `per_patient_day` raises, all features together
        (an equal share each)."""
        share = per_patient_day / len(features)
        return [self.gain(name, share, max_gain) for name in features]


class ModelCard(_Strict):
    """The contents of ``card.json``; see ``docs/model-card.md``."""

    format_version: Literal[1] = FORMAT_VERSION
    model_version: str = Field(pattern=r"^[0-9a-f]{64}$")
    created_at: datetime
    #: Which module builds and exports the model (`monitor.model.registry`); a card
    #: written before the field is a MedicalLSTM's.
    architecture: str = Field(default=DEFAULT_ARCHITECTURE, pattern=r"^[a-z][a-z0-9_-]{0,63}$")
    hyperparameters: Hyperparameters
    features: list[str] = Field(min_length=1)
    window: int = Field(ge=1, le=MAX_WINDOW)
    sample_period_s: float = Field(gt=0)
    normalisation: Normalisation
    pooling: Pooling | None = None
    observed_mask: bool = False
    signals: dict[str, SignalSpec] = Field(default_factory=dict)
    flatline: dict[str, FlatlineRule] = Field(default_factory=dict)
    #: The features that are beat waveforms (premature or misshapen beats and asystole
    #: raise on them); a card written before the field has none.
    rhythm: dict[str, RhythmSpec] = Field(default_factory=dict)
    residual_sigma: list[float]
    training: TrainingInfo
    library_versions: dict[str, str]
    metrics: Metrics
    calibration: Calibration | None = None
    #: The residual scale's variance takes every residual clipped at this many scales
    #: (`monitor.core.scale.ResidualScale`); None: only residuals with |z| < 3. Set by
    #: `monitor train --data` (real recordings: heavy-tailed residuals), not for the
    #: simulator's Gaussian ones.
    residual_clip_at: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _consistent(self) -> ModelCard:
        n = len(self.features)
        for name, spec in self.signals.items():
            check_signal(spec.vital(name))
        unknown = [f for f in self.features if f not in VITALS and f not in self.signals]
        if unknown:
            raise ValueError(
                f"unknown feature(s) {unknown}; known vitals: {sorted(VITALS)}, signals "
                f"listed in the card: {sorted(self.signals)}"
            )
        for part, names in (("flatline", self.flatline), ("rhythm", self.rhythm)):
            stray = sorted(set(names) - set(self.features))
            if stray:
                raise ValueError(f"{part} names non-feature(s) {stray}")
        if len(set(self.features)) != n:
            raise ValueError(f"duplicate features in {self.features}")
        hp = self.hyperparameters
        inputs = 2 * n if self.observed_mask else n
        if hp.input_size != inputs or hp.output_size != n:
            raise ValueError(
                f"{n} features{' with observed mask' if self.observed_mask else ''} but "
                f"input_size={hp.input_size}, output_size={hp.output_size}"
            )
        for name, values in (
            ("normalisation.mean", self.normalisation.mean),
            ("normalisation.std", self.normalisation.std),
            ("residual_sigma", self.residual_sigma),
        ):
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values for {n} features")
            if not all(math.isfinite(v) for v in values):
                raise ValueError(f"{name} has a non-finite value: {values}")
        if self.pooling is not None:
            old = self.window - self.pooling.recent
            if old <= 0 or old % self.pooling.block:
                raise ValueError(
                    f"pooling: window - recent ({old}) must be a positive multiple of "
                    f"block ({self.pooling.block})"
                )
        if any(v <= 0 for v in self.normalisation.std):
            raise ValueError(f"normalisation.std must be > 0: {self.normalisation.std}")
        if any(v <= 0 for v in self.residual_sigma):
            raise ValueError(f"residual_sigma must be > 0: {self.residual_sigma}")
        if self.calibration is not None and set(self.calibration.per_vital) != set(self.features):
            raise ValueError(
                f"calibration covers {sorted(self.calibration.per_vital)}, "
                f"the model's features are {self.features}"
            )
        return self

    def registry(self) -> Registry:
        """The built-in vitals plus the signals this card lists."""
        return Registry(spec.vital(name) for name, spec in self.signals.items())

    def feature_index(self, name: str) -> int:
        """Return the column of feature `name` in the model's tensors.

        Raises:
            KeyError: The model has no such feature.
        """
        try:
            return self.features.index(name)
        except ValueError:
            raise KeyError(f"model has no feature {name!r}; it has {self.features}") from None

    def to_json(self) -> str:
        """Serialise to the text written as ``card.json``."""
        return self.model_dump_json(indent=2) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> ModelCard:
        """Parse and validate ``card.json`` text.

        Raises:
            pydantic.ValidationError: The text is not a valid card.
        """
        return cls.model_validate_json(text)
