"""The flatline rule learned per signal: quantised signals repeat values without alarm."""

from __future__ import annotations

import json

import numpy as np
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent
from monitor.core.vitals import Registry, Vital
from monitor.engine.pipeline import ModelInfo, Pipeline
from monitor.model.card import FlatlineRule
from monitor.service.metrics import Metrics
from monitor.settings import Settings
from monitor.training.data import Segment
from monitor.training.repeats import flatline_rules, run_lengths
from tests.support.ingest import ingest_one

T0 = 1_700_000_000.0
WAVE = Vital("wave", "1", -2.0, 2.0, "a quantised slow wave")
WINDOW = 40


def quantised(n: int, seed: int = 0) -> np.ndarray:
    """A slow signal on a 0.1 grid: each level held 6 to 12 samples, then a step of 0.1.

    As a sampled slow wave rounded to 0.1 looks: runs of 6 to 12 equal values.
    """
    rng = np.random.default_rng(seed)
    levels, level = [], 0.0
    while sum(len(run) for run in levels) < n:
        levels.append([round(level, 1)] * int(rng.integers(6, 13)))
        step = 0.1 if rng.random() < 0.5 else -0.1
        level = level + step if abs(level + step) <= 1.0 else level - step
    return np.array([v for run in levels for v in run][:n])


def learn(values: np.ndarray) -> FlatlineRule:
    return flatline_rules([Segment(values[:, None])], ["wave"], Registry([WAVE]))["wave"]


def pipeline(flatline_samples: int | None, signals: Registry) -> Pipeline:
    info = ModelInfo(
        ("wave",),
        WINDOW,
        np.array([0.05]),
        "v-test",
        sample_period_s=1.0,
        signals=signals,
        flatline_samples=None if flatline_samples is None else (flatline_samples,),
    )
    return Pipeline(info, Settings(), Metrics.create(CollectorRegistry()))


def replay(p: Pipeline, values: np.ndarray) -> list[AlertEvent]:
    """Feed one patient's series, scoring each ready window (predicting persistence)."""
    events: list[AlertEvent] = []
    for seq, value in enumerate(values.tolist()):
        body = {"v": 1, "patient_id": "q1", "t": T0 + seq, "seq": seq, "vitals": {"wave": value}}
        events += ingest_one(p, "vitals/q1", json.dumps(body).encode(), T0 + seq)
        jobs = p.take_batch()
        if jobs:
            preds = np.stack([j.context[-1] for j in jobs]).astype(np.float32)
            events += p.score(jobs, preds, T0 + seq, live=False)
    return events


def flatlines(events: list[AlertEvent]) -> list[AlertEvent]:
    return [e for e in events if e.reason == "flatline" and e.state == "raised"]


def test_run_lengths_per_sample_and_nan_breaks_runs() -> None:
    """Each sample gets its run's length; a missing value has none and splits runs."""
    series = np.array([1.0, 1.0, 2.0, np.nan, 2.0, 2.0, 2.0])
    assert run_lengths(series).tolist() == [2, 2, 1, 0, 3, 3, 3]


def test_learned_rule_of_a_quantised_signal() -> None:
    """Runs of 6 to 12: normal run 12, resolution 0.1, flatline from 24 equal samples."""
    values = quantised(4000)
    runs = run_lengths(values)
    assert runs.min() == 6
    assert runs.max() == 12
    rule = learn(values)
    assert rule.resolution == 0.1
    assert (rule.normal_run, rule.longest_run, rule.samples) == (12, 12, 24)
    assert rule.samples - 1 <= WINDOW  # the window can see such a run


def test_noise_keeps_the_default_and_sparse_data_learns_a_long_run() -> None:
    """A continuous noisy signal keeps 5; a mostly-zero one needs a run far beyond its own."""
    rng = np.random.default_rng(0)
    assert learn(rng.normal(0, 1, 2000)).samples == 5
    sparse = np.zeros(3000)
    sparse[rng.choice(3000, 60, replace=False)] = rng.uniform(0.5, 1.5, 60)
    rule = learn(sparse)
    assert rule.normal_run > 50
    assert rule.samples > WINDOW + 1  # longer than the window holds: never raised


def test_a_held_vital_learns_the_runs_of_its_own_values() -> None:
    """A vital held between its samples (every value repeated 4 times on the grid, flagged
    unobserved) learns the runs of the values it was sent with, as serving judges them:
    noise keeps 5 (counting the holds it would learn 8)."""
    rng = np.random.default_rng(1)
    held = np.repeat(rng.normal(0, 1, 500), 4)[:, None]
    observed = np.zeros(held.shape, dtype=bool)
    observed[::4] = True
    registry = Registry([WAVE])
    rule = flatline_rules([Segment(held, observed=observed)], ["wave"], registry)["wave"]
    assert (rule.normal_run, rule.samples) == (1, 5)
    assert flatline_rules([Segment(held)], ["wave"], registry)["wave"].samples == 8


def test_a_declared_flatline_run_wins_over_the_learned_one() -> None:
    """A registered signal's flatline_samples is written as the card's rule."""
    declared = Vital("wave", "1", -2.0, 2.0, "", None, 30)
    rule = flatline_rules([Segment(quantised(2000)[:, None])], ["wave"], Registry([declared]))
    assert rule["wave"].samples == 30


def test_quantised_signal_raises_no_flatline_but_a_stuck_sensor_does() -> None:
    """With the learned rule, normal repeats pass; a run far longer than normal is a flatline.

    The fixed rule of old cards (5 equal values) raises on the same normal data.
    """
    rule = learn(quantised(4000))
    signals = Registry([WAVE])
    served = quantised(1200, seed=1)
    assert not flatlines(replay(pipeline(rule.samples, signals), served))
    assert flatlines(replay(pipeline(None, signals), served))  # today's 5: false alarms

    stuck = served.copy()
    stuck[600:700] = stuck[600]  # the sensor freezes for 100 samples
    events = replay(pipeline(rule.samples, signals), stuck)
    raised = flatlines(events)
    assert len(raised) == 1
    # Raised once the run is `samples` long: 600 + samples - 1 (+ the run's earlier part).
    first = int(np.flatnonzero(stuck[:600] != stuck[600])[-1]) + 1
    assert raised[0].t == T0 + first + rule.samples - 1
