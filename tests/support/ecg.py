"""An ECG-like trace for the rhythm tests: narrow complexes at a jittered rate."""

from __future__ import annotations

import numpy as np

#: 360 Hz, as MIT-BIH.
PERIOD = 1.0 / 360.0


def ecg(
    seconds: float, rr: float = 0.8, early: tuple[float, ...] = (), seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[float]]:
    """An ECG-like trace: a narrow 1 mV complex per beat, RR jittered by 2 %, noise; each
    beat whose start passes a time in `early` comes 30 % early. Returns (t, x, beat times
    of the early beats)."""
    rng = np.random.default_rng(seed)
    t = np.arange(0.0, seconds, PERIOD)
    x = 0.02 * rng.standard_normal(t.size)
    beat, beats, marked, pending = 0.3, [], [], sorted(early)
    while beat < seconds:
        beats.append(beat)
        gap = rr * (1 + 0.02 * rng.standard_normal())
        if pending and beat + gap >= pending[0]:
            gap *= 0.7
            pending.pop(0)
            marked.append(beat + gap)
        beat += gap
    return t, _complexes(t, x, beats), marked


def ecg_of(intervals: np.ndarray, seed: int = 0) -> np.ndarray:
    """The same trace for given intervals between beats (the first beat at 0.3 s), ending
    0.5 s after the last beat."""
    beats = 0.3 + np.concatenate([[0.0], np.cumsum(intervals)])
    return ecg_at(beats.tolist(), beats[-1] + 0.5, seed=seed)[1]


def ecg_at(
    beats: list[float],
    seconds: float,
    size: list[float] | None = None,
    seed: int = 0,
    wide: frozenset[int] = frozenset(),
) -> tuple[np.ndarray, np.ndarray]:
    """The same trace with complexes at the given beat times (`size`: each one's height in
    mV, 1 by default), noise throughout; the beats whose indexes are in `wide` are wide
    complexes instead (ventricular-like: a wave twice as high, 2.5 times as wide, then a
    trough).
    Returns (t, x)."""
    t = np.arange(0.0, seconds, PERIOD)
    x = 0.02 * np.random.default_rng(seed).standard_normal(t.size)
    return t, _complexes(t, x, beats, size, wide)


def beats_every(rr: float, start: float, stop: float) -> list[float]:
    """Beat times every `rr` seconds from `start`, before `stop`."""
    return np.arange(start, stop, rr).tolist()


def _complexes(
    t: np.ndarray,
    x: np.ndarray,
    beats: list[float],
    size: list[float] | None = None,
    wide: frozenset[int] = frozenset(),
) -> np.ndarray:
    """`x` with a narrow complex added at each beat time (1 mV, or its `size`), or a wide
    one for the indexes in `wide`."""
    for i, beat in enumerate(beats):
        height = 1.0 if size is None else size[i]
        if i in wide:
            x += 2.0 * height * np.exp(-0.5 * ((t - beat - 0.01) / 0.02) ** 2)
            x -= 0.8 * height * np.exp(-0.5 * ((t - beat - 0.08) / 0.03) ** 2)
        else:
            x += height * np.exp(-0.5 * ((t - beat) / 0.008) ** 2)
    return x
