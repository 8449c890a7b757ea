"""Named scenarios: which anomalies each patient gets, when, and the resulting samples.

Pure and seeded: `Scenario.samples(i, a, b)` returns the same values for patient `i` and the
sequence range ``[a, b)`` however the range is cut into calls, in whatever patient order, at
whatever publishing speed. The MQTT publisher and the evaluator both call it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from monitor.core.vitals import BUILTIN, Registry
from simulators.anomalies import BoolArray, Event, inject
from simulators.labels import KINDS, AnomalyKind, AnomalyLabel
from simulators.signals import FloatArray, PatientProfile, ceilings, clean_signal, noise_sigmas

#: Noise is drawn in blocks of this many samples, each from its own seeded generator, so
#: any sequence range can be produced without replaying the stream from the start.
NOISE_BLOCK = 64


@dataclass(frozen=True, slots=True)
class ScenarioSpec:
    """What a named scenario injects.

    Attributes:
        name: The `--scenario` name.
        kinds: Kinds of anomaly, drawn uniformly per event.
        vitals: Vitals that may be affected (None: any vital of the profile).
        sign: Forced direction (+1 up, -1 down); None draws it (SpO2 always goes down).
        patient_fraction: Share of patients that get events at all.
        mixed_rates: Vitals at realistic different rates (`SEND_PERIODS_S`), and a share of
            patients (`WEARABLE_SHARE`) sending only `WEARABLE_VITALS`; events fall only
            on vitals a patient sends every sample.
    """

    name: str
    kinds: tuple[AnomalyKind, ...]
    vitals: tuple[str, ...] | None = None
    sign: float | None = None
    patient_fraction: float = 1.0
    mixed_rates: bool = False


SCENARIOS: dict[str, ScenarioSpec] = {
    s.name: s
    for s in (
        ScenarioSpec("stable", ()),
        ScenarioSpec("tachycardia", ("level_shift", "drift"), ("heart_rate",), 1.0, 0.5),
        ScenarioSpec("desaturation", ("level_shift", "drift"), ("spo2",), -1.0, 0.5),
        ScenarioSpec("sensor-dropout", ("dropout",), None, None, 0.5),
        ScenarioSpec("mixed", KINDS),
        ScenarioSpec("mixed-rates", KINDS, mixed_rates=True),
        ScenarioSpec("probe-off", ("probe_off",), None, None, 0.5, mixed_rates=True),
    )
}

#: mixed-rates: seconds between two sends of a slow vital, drawn per patient from this
#: range (non-invasive blood pressure every 5 to 15 minutes, both values of one reading
#: together; temperature every 10 to 60 minutes). Other vitals are sent every sample.
SEND_PERIODS_S: dict[str, tuple[float, float]] = {
    "bp_sys": (300.0, 900.0),
    "temperature": (600.0, 3600.0),
}
#: mixed-rates: vitals sent together with another's period (one NIBP reading gives both).
SENT_WITH = {"bp_dia": "bp_sys"}
#: mixed-rates: share of patients on a wearable that sends only `WEARABLE_VITALS`.
WEARABLE_SHARE = 0.3
WEARABLE_VITALS = ("heart_rate", "spo2")


@dataclass(frozen=True, slots=True)
class Timing:
    """When events happen and how long they last (seconds of simulated time).

    Attributes:
        warmup_s: No event starts before this, so detectors have full windows first.
        gap_s: Quiet time between the end of one event and the start of the next (uniform).
        magnitude_sigma: Range of magnitudes, in sigma of the affected vital (uniform).
        durations_s: Duration range per kind (a spike is always one sample).
    """

    warmup_s: float = 300.0
    gap_s: tuple[float, float] = (300.0, 900.0)
    magnitude_sigma: tuple[float, float] = (3.0, 12.0)
    durations_s: dict[str, tuple[float, float]] = field(
        default_factory=lambda: {
            "level_shift": (60.0, 300.0),
            "drift": (120.0, 600.0),
            "flatline": (30.0, 180.0),
            "dropout": (10.0, 120.0),
            "probe_off": (30.0, 300.0),
            "noise_burst": (30.0, 120.0),
            "rhythm_change": (60.0, 300.0),
        }
    )


#: Samples a daemon serving the shipped model needs per patient before it scores (its card's
#: `window`; a test keeps them equal).
QUICK_WINDOW_SAMPLES = 120
#: `--quick`: quiet simulated seconds before each patient's events.
QUICK_GAP_S = (10.0, 60.0)


def quick_timing(rate: float) -> Timing:
    """Timing of `monitor simulate --quick`: the first events start 10 to 60 s after the
    shipped model's window has filled (`QUICK_WINDOW_SAMPLES` samples at `rate`), then recur
    every 10 to 60 s per patient, so a daemon shows an alert within about a minute of
    scoring."""
    return Timing(warmup_s=QUICK_WINDOW_SAMPLES / rate, gap_s=QUICK_GAP_S)


@dataclass
class _Schedule:
    rng: np.random.Generator
    active: bool
    cursor: int
    events: list[Event] = field(default_factory=list)


class Scenario:
    """A named scenario over a fixed set of patients.

    Args:
        spec: What to inject.
        profiles: The patients, in index order (patient `i` is ``profiles[i]``).
        seed: The run's seed.
        rate: Samples per second per patient.
        start_time: Unix time of sequence 0 (sample times are ``start_time + seq / rate``).
        timing: Event timing.
        signals: Where the profiles' names are resolved (their bounds clip the values).
    """

    def __init__(
        self,
        spec: ScenarioSpec,
        profiles: list[PatientProfile],
        seed: int,
        rate: float,
        start_time: float = 0.0,
        timing: Timing | None = None,
        signals: Registry = BUILTIN,
    ) -> None:
        self.spec = spec
        self.signals = signals
        self.profiles = profiles
        self.seed = seed
        self.rate = rate
        self.start_time = start_time
        self.timing = timing or Timing()
        self._schedules: dict[int, _Schedule] = {}
        self._sending: dict[int, tuple[list[tuple[int, int] | None], tuple[str, ...]]] = {}

    @property
    def names(self) -> tuple[str, ...]:
        """Vital names in feature order (the same for every patient)."""
        return self.profiles[0].names

    def time_of(self, seq: int) -> float:
        """Return the sample time (unix seconds) of sequence number `seq`."""
        return self.start_time + seq / self.rate

    def _schedule(self, i: int) -> _Schedule:
        sched = self._schedules.get(i)
        if sched is None:
            rng = np.random.default_rng([self.seed, i, 0xE7E27])
            active = bool(self.spec.kinds) and rng.random() < self.spec.patient_fraction
            warmup = round(self.timing.warmup_s * self.rate)
            sched = self._schedules[i] = _Schedule(rng, active, warmup)
        return sched

    def _next_event(self, i: int, sched: _Schedule) -> Event:
        rng, spec, timing = sched.rng, self.spec, self.timing
        names = self.names
        dense = self._send_plan(i)[1]
        allowed = [n for n in (spec.vitals or names) if n in names and n in dense]
        if not allowed:
            raise ValueError(f"scenario {spec.name!r} needs one of {spec.vitals}; have {names}")
        # Always draw the same values in the same order, whatever the kind, so one event's
        # kind never shifts the random stream of the next.
        gap = rng.uniform(*timing.gap_s)
        kind = spec.kinds[int(rng.integers(len(spec.kinds)))]
        vital_name = allowed[int(rng.integers(len(allowed)))]
        magnitude = rng.uniform(*timing.magnitude_sigma)
        sign = 1.0 if rng.random() < 0.5 else -1.0
        factor = rng.uniform(4.0, 8.0)
        lo, hi = timing.durations_s.get(kind, (0.0, 0.0))
        duration = rng.uniform(lo, hi)
        if spec.sign is not None:
            sign = spec.sign
        elif vital_name == "spo2":
            sign = -1.0  # an upward SpO2 event would be clipped away at 100 %
        start = sched.cursor + max(1, round(gap * self.rate))
        length = 1 if kind == "spike" else max(2, round(duration * self.rate))
        if kind in ("flatline", "dropout", "probe_off"):
            magnitude = 0.0
        event = Event(
            kind=kind,
            vital=None if kind == "dropout" else names.index(vital_name),
            start_seq=start,
            end_seq=start + length - 1,
            magnitude=magnitude,
            sign=sign,
            factor=factor,
            seed=(self.seed, i, len(sched.events), 0xB0257),
        )
        sched.cursor = event.end_seq + 1
        return event

    def _send_plan(self, i: int) -> tuple[list[tuple[int, int] | None], tuple[str, ...]]:
        """Patient `i`'s sending: per vital None (every sample), (period, phase) in samples,
        or (0, 0) (never); and the vitals it sends every sample."""
        plan = self._sending.get(i)
        if plan is not None:
            return plan
        names = self.names
        if not self.spec.mixed_rates:
            plan = ([None] * len(names), names)
        else:
            rng = np.random.default_rng([self.seed, i, 0x5E4D])
            wearable = rng.random() < WEARABLE_SHARE
            drawn: dict[str, tuple[int, int]] = {}
            for name, (lo, hi) in SEND_PERIODS_S.items():
                period = max(1, round(rng.uniform(lo, hi) * self.rate))
                drawn[name] = (period, int(rng.integers(period)))
            periods: list[tuple[int, int] | None] = []
            for name in names:
                if wearable and name not in WEARABLE_VITALS:
                    periods.append((0, 0))
                else:
                    periods.append(drawn.get(SENT_WITH.get(name, name)))
            dense = tuple(n for n, p in zip(names, periods, strict=True) if p is None)
            plan = (periods, dense)
        self._sending[i] = plan
        return plan

    def sent(self, i: int, a: int, b: int) -> BoolArray | None:
        """Which vitals patient `i` sends at each sequence number of ``[a, b)``,
        ``(b - a, n_vitals)`` (its send plan, less the vital of a `probe_off` event while
        it lasts); None when every vital goes in every sample."""
        periods = self._send_plan(i)[0]
        off = [e for e in self.events(i, b) if e.kind == "probe_off" and e.overlaps(a, b)]
        if all(p is None for p in periods) and not off:
            return None
        seq = np.arange(a, b, dtype=np.int64)
        out = np.ones((b - a, len(periods)), dtype=np.bool_)
        for v, p in enumerate(periods):
            if p is not None:
                period, phase = p
                out[:, v] = False if period == 0 else (seq - phase) % period == 0
        for e in off:
            out[(seq >= e.start_seq) & (seq <= e.end_seq), e.vital] = False
        return out

    def events(self, i: int, until_seq: int) -> list[Event]:
        """Return patient `i`'s events that start before `until_seq`, in time order."""
        sched = self._schedule(i)
        while sched.active and (not sched.events or sched.events[-1].start_seq < until_seq):
            sched.events.append(self._next_event(i, sched))
        return [e for e in sched.events if e.start_seq < until_seq]

    def label(self, i: int, event: Event) -> AnomalyLabel:
        """Return the ground-truth label of one of patient `i`'s events."""
        return AnomalyLabel(
            patient_id=self.profiles[i].patient_id,
            vital=None if event.vital is None else self.names[event.vital],
            kind=event.kind,
            start_t=self.time_of(event.start_seq),
            end_t=self.time_of(event.end_seq),
            start_seq=event.start_seq,
            end_seq=event.end_seq,
            magnitude_sigma=event.magnitude,
        )

    def labels(self, i: int, a: int, b: int) -> list[AnomalyLabel]:
        """Return labels of patient `i`'s events that start in ``[a, b)``."""
        return [self.label(i, e) for e in self.events(i, b) if e.start_seq >= a]

    def stable(self, i: int, a: int, b: int) -> FloatArray:
        """Return patient `i`'s samples for ``[a, b)`` without anomalies, ``(b - a, n_vitals)``."""
        profile = self.profiles[i]
        seq = np.arange(a, b, dtype=np.int64)
        first, last = a // NOISE_BLOCK, (b - 1) // NOISE_BLOCK
        z = np.concatenate(
            [
                np.random.default_rng([self.seed, i, k, 0x4015E]).standard_normal(
                    (NOISE_BLOCK, len(profile.vitals))
                )
                for k in range(first, last + 1)
            ]
        )[a - first * NOISE_BLOCK : b - first * NOISE_BLOCK]
        values = clean_signal(profile, seq / self.rate) + z * noise_sigmas(profile)
        return np.minimum(values, ceilings(profile))

    def samples(self, i: int, a: int, b: int) -> tuple[FloatArray, FloatArray, BoolArray]:
        """Return patient `i`'s published samples for the sequence range ``[a, b)``.

        Returns:
            ``(t, values, present)``: sample times (unix seconds) ``(n,)``, values
            ``(n, n_vitals)`` within each vital's bounds, and whether each sample is published
            (False during a dropout).
        """
        seq = np.arange(a, b, dtype=np.int64)
        values = self.stable(i, a, b)
        present = np.ones(b - a, dtype=np.bool_)
        profile = self.profiles[i]
        params = list(profile.vitals.values())
        for event in self.events(i, b):
            if not event.overlaps(a, b):
                continue
            hold = 0.0
            if event.kind == "flatline" and event.vital is not None:
                hold = float(self.stable(i, event.start_seq - 1, event.start_seq)[0, event.vital])
            vp = None if event.vital is None else params[event.vital]
            inject(event, seq, seq / self.rate, values, present, vp, hold, self.rate)
        low = np.array([self.signals[n].low for n in profile.vitals])
        high = np.minimum(
            np.array([self.signals[n].high for n in profile.vitals]), ceilings(profile)
        )
        return self.start_time + seq / self.rate, np.clip(values, low, high), present


def build(
    name: str,
    profiles: list[PatientProfile],
    seed: int,
    rate: float,
    start_time: float = 0.0,
    timing: Timing | None = None,
    signals: Registry = BUILTIN,
) -> Scenario:
    """Return the scenario `name` (a key of `SCENARIOS`) over `profiles`.

    `signals` resolves the profiles' names: built-in vitals and registered signals.

    Raises:
        KeyError: Unknown scenario name.
        ValueError: The profiles lack every vital the scenario acts on (`probe-off`: two
            vitals sent every sample).
    """
    if name not in SCENARIOS:
        raise KeyError(f"unknown scenario {name!r}; known: {', '.join(SCENARIOS)}")
    spec = SCENARIOS[name]
    names = profiles[0].names
    if spec.vitals is not None and not set(spec.vitals) & set(names):
        raise ValueError(f"scenario {name!r} needs one of {spec.vitals}; have {names}")
    if "probe_off" in spec.kinds and len(set(names) - set(SEND_PERIODS_S) - set(SENT_WITH)) < 2:
        # A probe off must leave the patient another vital to send every sample.
        raise ValueError(f"scenario {name!r} needs two vitals sent every sample; have {names}")
    return Scenario(spec, profiles, seed, rate, start_time, timing, signals)
