"""Alarm calibration at training time: the detector's raise rate on the training data.

The detector's levels are fixed multiples of a per-patient residual scale that assumes
roughly Gaussian residuals. Real residuals are heavy-tailed (every QRS complex is a huge
residual for a next-sample predictor), so the fixed levels raise far too often on them.
Here the fitted model's residuals on the data it was trained on (in time order, unaugmented)
become z exactly as serving makes them (`ResidualScale`, one stream per segment), and the
real detector counts its raises per vital with z divided by each gain of a geometric grid
(every rule is in z units, so one gain scales them all). ``ln(raises per day)`` against the
gain is then fitted by a line over the grid points with a usable count (1 to 200 raises):
an exponential tail, which extrapolates to rates rarer than the training span can show.
Serving turns the card's curves into gains for its false-alarm budget
(`monitor.model.card.Calibration.gain`); docs/detection.md has the policy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np
import numpy.typing as npt

from monitor.core.detector import Detector, DetectorConfig
from monitor.core.scale import ResidualScale
from monitor.core.types import AnyFloatArray
from monitor.model.card import Calibration, VitalCalibration
from monitor.model.features import make_windows
from monitor.training.data import Segment

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

#: Gains 1 to 64, four steps per doubling.
GAIN_GRID: tuple[float, ...] = tuple(2.0 ** (k / 4) for k in range(25))

#: Grid points whose raise count lies in this range carry the tail fit: one raise is the
#: least that says anything, and above a few hundred the count is the bulk, not the tail.
USABLE_RAISES = (1, 200)

#: Time steps scored per `Detector.update_many` call (all streams and gains together).
_CHUNK = 256

SECONDS_PER_DAY = 86_400.0

#: The residual scale's clip for a model trained on a real recording (`monitor train
#: --data`): its card's `residual_clip_at` (docs/detection.md, "The residual scale follows
#: heavy tails").
REAL_DATA_CLIP_AT = 6.0


def scaled_residuals(
    segments: Sequence[Segment],
    predict: Callable[[AnyFloatArray], AnyFloatArray],
    window: int,
    residual_sigma: Sequence[float],
    clip_at: float | None = None,
) -> list[FloatArray]:
    """The z that serving would compute for every scored sample of every stream.

    Each segment's first `window` samples are context only, as in the daemon's window store
    (a gap restarts the window). The segments of one stream (`Segment.stream`: one patient)
    share one residual scale, which starts from the stream's first window and goes on across
    its gaps, as serving's per-patient scale does; a segment without a stream is a stream of
    its own. (Restarting the scale at every gap counted each short segment's start-up, when
    the scale has not yet learned the stream's residuals, as raises: on an irregularly
    sampled series cut into many short segments that was most of the calibration's count.)

    Args:
        segments: Gap-free runs of samples, oldest first; a stream's segments in time order.
        predict: Raw windows ``(N, window, F)`` (``2F`` with observed flags, for a segment
            with held values) -> raw next-sample predictions ``(N, F)``.
        window: The model's window.
        residual_sigma: The card's pooled residual sigma (the scale's floor).
        clip_at: The card's `residual_clip_at` (the scale serving will use).

    Returns:
        One array per stream with a segment longer than the window: its segments' scored
        samples, ``(sum(T_i - window), F)``, in order (streams in order of first segment).
    """
    ids: list[str] = []
    firsts: list[AnyFloatArray] = []
    parts: list[FloatArray] = []
    for i, seg in enumerate(segments):
        # Values held between a slower vital's samples (`Segment.observed`): the model
        # reads them with their flags, and a held one is not scored (NaN residual: a calm
        # sample), as in serving.
        f = seg.values.shape[1]
        held = seg.observed is not None
        series = np.concatenate([seg.values, seg.observed], 1) if held else seg.values
        windows, next_ = make_windows(series, window)
        if len(next_) == 0:
            continue
        x, y = windows[:, :, :f], next_[:, :f]
        resid = np.asarray(y - predict(windows), dtype=np.float64)
        parts.append(np.where(next_[:, f:] > 0.5, resid, np.nan) if held else resid)
        ids += [f"s{i}" if seg.stream is None else f"r{seg.stream}"] * len(y)
        # Only a stream's first window is read (its initial scale): one reference per row.
        firsts += [x[0]] * len(y)
    if not parts:
        return []
    # All streams in one call: the scale steps every stream's t-th sample in one round,
    # and a stream's rows, in order, each see the state its previous row left.
    scale = ResidualScale(np.asarray(residual_sigma, dtype=np.float64), clip_at=clip_at)
    z = scale.z_batch(ids, firsts, np.concatenate(parts))
    z = np.nan_to_num(z, nan=0.0)  # a value not sampled (held): no z, a calm sample
    rows: dict[str, list[int]] = {}
    for row, name in enumerate(ids):
        rows.setdefault(name, []).append(row)
    return [z[np.asarray(r)] for r in rows.values()]


def raise_counts(
    zs: Sequence[FloatArray],
    features: Sequence[str],
    gains: Sequence[float] = GAIN_GRID,
    config: DetectorConfig | None = None,
) -> IntArray:
    """Raises of the detector per gain and vital, z divided by the gain.

    Every (stream, gain) pair is one patient of one detector, so each call scores a time
    step of all of them in a single vectorised round.

    Args:
        zs: z of each stream, ``(T_i, F)``, in time order.
        features: Vital names in column order.
        gains: Gains to measure.
        config: Detector settings (the defaults when None).

    Returns:
        ``(len(gains), F)`` counts of "raised" events.
    """
    det = Detector(features, config or DetectorConfig(), model_version="calibration")
    column = {name: i for i, name in enumerate(features)}
    g = np.asarray(gains, dtype=np.float64)
    counts = np.zeros((len(g), len(features)), dtype=np.int64)
    longest = max((len(z) for z in zs), default=0)
    names = [[f"{s}-{j}" for j in range(len(g))] for s in range(len(zs))]
    for lo in range(0, longest, _CHUNK):
        ids: list[str] = []
        blocks: list[FloatArray] = []
        for s, z in enumerate(zs):
            part = z[lo : lo + _CHUNK]
            if len(part) == 0:
                continue
            # Time-major rows of this stream: every gain's sample t before any gain's t + 1.
            blocks.append((part[:, None, :] / g[None, :, None]).reshape(-1, len(features)))
            ids += names[s] * len(part)
        rows = np.concatenate(blocks)
        zeros = np.zeros_like(rows)
        seq = list(range(len(ids)))
        for event in det.update_many(ids, rows, [0.0] * len(ids), seq, zeros, zeros):
            if event.state == "raised" and event.vital is not None and event.patient_id:
                gain = int(event.patient_id.rsplit("-", 1)[1])
                counts[gain, column[event.vital]] += 1
    return counts


def fit_tail(
    gains: Sequence[float], raises: Sequence[int], days: float
) -> tuple[float, float] | None:
    """Fit ``ln(raises per day) = intercept + slope * gain`` over the usable grid points.

    Returns:
        ``(intercept, slope)``, or None with fewer than two usable points or when their
        counts do not fall (one event that stays above every level up to some gain is no
        tail to extrapolate).
    """
    lo, hi = USABLE_RAISES
    usable = [(a, c) for a, c in zip(gains, raises, strict=True) if lo <= c <= hi]
    if len(usable) < 2 or len({c for _, c in usable}) < 2:
        return None
    points = [(a, math.log(c / days)) for a, c in usable]
    x = np.array([p[0] for p in points])
    y = np.array([p[1] for p in points])
    slope, intercept = np.polyfit(x, y, 1)
    if not slope < 0:
        return None
    return float(intercept), float(slope)


def calibrate(
    segments: Sequence[Segment],
    predict: Callable[[AnyFloatArray], AnyFloatArray],
    *,
    window: int,
    features: Sequence[str],
    sample_period_s: float,
    residual_sigma: Sequence[float],
    config: DetectorConfig | None = None,
    clip_at: float | None = None,
) -> Calibration | None:
    """Measure the detector's raise rate against its gain on `segments`, per vital.

    Args:
        segments: The training series (unaugmented), each in time order.
        predict: Raw windows -> raw predictions of the fitted model.
        window: The model's window.
        features: Vital names in column order.
        sample_period_s: Seconds per sample.
        residual_sigma: The card's pooled residual sigma.
        config: Detector settings the counts are measured with (the defaults when None).
        clip_at: The card's `residual_clip_at`.

    Returns:
        The card's calibration; None when no segment is longer than the window.
    """
    zs = scaled_residuals(segments, predict, window, residual_sigma, clip_at)
    samples = sum(len(z) for z in zs)
    if samples == 0:
        return None
    days = samples * sample_period_s / SECONDS_PER_DAY
    counts = raise_counts(zs, features, GAIN_GRID, config)
    per_vital: dict[str, VitalCalibration] = {}
    for i, name in enumerate(features):
        raises = [int(c) for c in counts[:, i]]
        fit = fit_tail(GAIN_GRID, raises, days)
        intercept, slope = fit if fit is not None else (None, None)
        per_vital[name] = VitalCalibration(raises=raises, intercept=intercept, slope=slope)
    return Calibration(gains=list(GAIN_GRID), days=days, per_vital=per_vital)
