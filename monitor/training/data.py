"""Training data as chronological segments, split into train / validation / test.

Every data source (simulated patients, the seed's sine, CSV recordings, later the replay
format) produces a `SplitData`; the rest of the trainer only sees segments. A window is
cut inside one segment only, so it never spans a gap or two patients or two splits.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from monitor.errors import DataError
from monitor.model.features import make_windows, with_flags

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Segment:
    """A gap-free run of samples, oldest first.

    Attributes:
        values: Measured values, shape ``(T, F)``, raw units.
        clean: The noiseless signal at the same times, when the source knows it.
        stream: The series (one patient) the segment was cut from, when several segments
            come from one: serving keeps one residual scale and one detector state per
            patient across the gaps between them, and the alarm calibration does the same
            (`monitor.training.calibration.scaled_residuals`). None: a stream of its own.
        observed: Where each value was sampled, ``(T, F)`` bool, when some were held from
            an earlier sample (a vital at its own, slower rate:
            `monitor.training.recordings.hold_slower`); None: every value was.
    """

    values: FloatArray
    clean: FloatArray | None = None
    stream: str | None = None
    observed: BoolArray | None = None


@dataclass(frozen=True, slots=True)
class SplitData:
    """A data set split chronologically (or by patient) into three parts.

    Attributes:
        features: Vital names, in column order.
        sample_period_s: Seconds between consecutive samples.
        train: Segments the model is fitted on (and normalisation statistics come from).
        val: Segments for the residual sigma (never trained on).
        test: Segments for the reported metrics (never trained on).
        description: One line saying where the data came from, for the card.
        held: Vitals sampled slower than the grid, name -> their own period (s): each value
            is held until the next (`monitor.training.recordings.hold_slower`).
    """

    features: tuple[str, ...]
    sample_period_s: float
    train: list[Segment]
    val: list[Segment]
    test: list[Segment]
    description: str
    held: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Windows:
    """Windows cut from segments, all raw units.

    Attributes:
        x: Inputs, ``(N, window, F)``.
        y: Next samples, ``(N, F)``.
        clean_y: Noiseless next samples, ``(N, F)``, when every segment had a clean signal.
        observed: Where each window's samples and its next sample were sampled, not held,
            ``(N, window + 1, F)`` bool, when a segment says (`Segment.observed`); None:
            every value was.
    """

    x: FloatArray
    y: FloatArray
    clean_y: FloatArray | None
    observed: BoolArray | None = None

    def flagged(self) -> FloatArray:
        """The windows with their observed flags after the values, ``(N, window, 2F)``:
        the input of a model with an observed mask, as serving builds it (a held value
        flagged unobserved)."""
        if self.observed is None:
            return np.asarray(with_flags(self.x), dtype=np.float64)
        out: FloatArray = np.concatenate([self.x, self.observed[:, :-1]], axis=2)
        return out

    def sampled_y(self) -> FloatArray:
        """The next samples with NaN where the value was held, not sampled (serving scores
        only what a sample carries)."""
        if self.observed is None:
            return self.y
        out: FloatArray = np.where(self.observed[:, -1], self.y, np.nan)
        return out

    def __len__(self) -> int:
        return int(self.y.shape[0])


def cut_windows(segments: list[Segment], window: int, n_features: int, stride: int = 1) -> Windows:
    """Cut every segment into windows (`make_windows`) and stack them in order.

    Args:
        segments: Segments, each ``(T_i, F)``; those with ``T_i <= window`` give none.
        window: Samples per input window.
        n_features: F, used when there are no segments at all.
        stride: Keep every `stride`-th window of each segment.

    Returns:
        The stacked windows; ``clean_y`` is None unless every segment has ``clean``.
    """
    xs, ys, cs, obs = [], [], [], []
    held = any(seg.observed is not None for seg in segments)
    for seg in segments:
        x, y = make_windows(seg.values, window, stride)
        xs.append(x)
        ys.append(y)
        if seg.clean is not None:
            cs.append(seg.clean[window::stride])
        if held:
            seen = np.ones(seg.values.shape) if seg.observed is None else seg.observed * 1.0
            ox, oy = make_windows(seen, window, stride)
            obs.append(np.concatenate([ox, oy[:, None, :]], axis=1) > 0.5)
    if not xs:
        empty = np.empty((0, n_features), dtype=np.float64)
        return Windows(np.empty((0, window, n_features), dtype=np.float64), empty, None)
    clean = np.concatenate(cs) if len(cs) == len(segments) else None
    observed = np.concatenate(obs) if held else None
    return Windows(np.concatenate(xs), np.concatenate(ys), clean, observed)


def require_windows(windows: Windows, part: str, window: int) -> None:
    """Raise `DataError` when a split yields no window at all.

    Raises:
        DataError: `part` has no segment longer than `window` samples.
    """
    if len(windows) == 0:
        raise DataError(part, f"no segment longer than the window ({window} samples)")
