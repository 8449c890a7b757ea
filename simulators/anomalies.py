"""Pure anomaly injection: how each kind of event changes a patient's samples.

An `Event` covers the inclusive sequence range ``[start_seq, end_seq]`` of one patient. `inject`
changes only the samples inside that range, so comparing a scenario with the stable output of
the same seed shows the events exactly where the labels say. docs/simulator.md defines each kind.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from simulators.labels import AnomalyKind
from simulators.signals import FloatArray, VitalParams

BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Event:
    """One injected anomaly of one patient.

    Attributes:
        kind: The kind of anomaly.
        vital: Feature index of the affected vital; None for a dropout (whole patient).
            A `probe_off` stops sending this vital (`Scenario.sent`), its values unchanged.
        start_seq: First affected sequence number.
        end_seq: Last affected sequence number (inclusive).
        magnitude: Size in units of the vital's noise sigma (0 for flatline, dropout and probe_off).
        sign: Direction, +1 or -1 (spike, level shift, drift).
        factor: Rhythm change: how many times shorter the period becomes.
        seed: Seeds the event's own randomness (the extra noise of a noise burst).
    """

    kind: AnomalyKind
    vital: int | None
    start_seq: int
    end_seq: int
    magnitude: float
    sign: float
    factor: float
    seed: tuple[int, ...]

    def overlaps(self, a: int, b: int) -> bool:
        """Tell whether the event touches the half-open sequence range ``[a, b)``."""
        return self.start_seq < b and self.end_seq >= a


def inject(
    event: Event,
    seq: npt.NDArray[np.int64],
    t_rel: FloatArray,
    values: FloatArray,
    present: BoolArray,
    params: VitalParams | None,
    hold: float,
    rate: float,
) -> None:
    """Apply `event` in place to the rows of `values`/`present` whose `seq` it covers.

    Args:
        event: The event.
        seq: Sequence number of each row, consecutive.
        t_rel: Signal time of each row, seconds since sequence 0.
        values: Samples ``(rows, n_vitals)``; changed in place.
        present: Whether each row is published; changed in place (dropouts).
        params: Parameters of the event's vital (None for a dropout).
        hold: Flatline: the vital's stable value at ``start_seq - 1`` (the stuck reading).
        rate: Samples per second (signal time of sequence s is ``s / rate``).
    """
    rows = (seq >= event.start_seq) & (seq <= event.end_seq)
    if not rows.any() or event.kind == "probe_off":
        return  # a probe off changes what is sent (`Scenario.sent`), not the values
    if event.kind == "dropout" or event.vital is None or params is None:
        present[rows] = False
        return
    j = event.vital
    size = event.magnitude * params.sigma
    n = event.end_seq - event.start_seq + 1
    k = seq[rows] - event.start_seq
    if event.kind in ("spike", "level_shift"):
        values[rows, j] += event.sign * size
    elif event.kind == "drift":
        values[rows, j] += event.sign * size * (k + 1) / n
    elif event.kind == "flatline":
        values[rows, j] = hold
    elif event.kind == "noise_burst":
        extra = np.random.default_rng(list(event.seed)).standard_normal(n)
        values[rows, j] += size * extra[k]
    elif event.kind == "rhythm_change":
        # The oscillation keeps its phase at the start, then runs `factor` times faster with
        # an amplitude of `magnitude` sigma.
        omega = 2.0 * math.pi / params.period_s
        t = t_rel[rows]
        t_start = event.start_seq / rate
        old = params.amplitude * np.sin(omega * t + params.phase)
        new = size * np.sin(omega * t_start + params.phase + event.factor * omega * (t - t_start))
        values[rows, j] += new - old
