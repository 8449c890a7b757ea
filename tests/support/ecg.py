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
    beat, marked, pending = 0.3, [], sorted(early)
    while beat < seconds:
        x += np.exp(-0.5 * ((t - beat) / 0.008) ** 2)
        gap = rr * (1 + 0.02 * rng.standard_normal())
        if pending and beat + gap >= pending[0]:
            gap *= 0.7
            pending.pop(0)
            marked.append(beat + gap)
        beat += gap
    return t, x, marked
