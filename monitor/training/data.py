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
from monitor.model.features import make_windows

FloatArray = npt.NDArray[np.float64]


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
    """

    values: FloatArray
    clean: FloatArray | None = None
    stream: str | None = None


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
    """

    x: FloatArray
    y: FloatArray
    clean_y: FloatArray | None

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
    xs, ys, cs = [], [], []
    for seg in segments:
        x, y = make_windows(seg.values, window, stride)
        xs.append(x)
        ys.append(y)
        if seg.clean is not None:
            cs.append(seg.clean[window::stride])
    if not xs:
        empty = np.empty((0, n_features), dtype=np.float64)
        return Windows(np.empty((0, window, n_features), dtype=np.float64), empty, None)
    clean = np.concatenate(cs) if len(cs) == len(segments) else None
    return Windows(np.concatenate(xs), np.concatenate(ys), clean)


def require_windows(windows: Windows, part: str, window: int) -> None:
    """Raise `DataError` when a split yields no window at all.

    Raises:
        DataError: `part` has no segment longer than `window` samples.
    """
    if len(windows) == 0:
        raise DataError(part, f"no segment longer than the window ({window} samples)")
