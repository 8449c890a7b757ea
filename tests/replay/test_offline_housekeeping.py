"""Offline housekeeping on the virtual clock jumps to the passes that act: the alerts and
counts of one pass per interval, with a number of passes that follows the samples, not the
span of the recording."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.replay import offline
from monitor.replay.offline import OfflineRunner
from monitor.replay.recording import Record, RecordingWriter
from monitor.settings import Settings
from tests.replay.stepping import metric_counts, stepped

START = 1_700_000_000.37
HOUR = 3600.0
YEAR = 365 * 24 * HOUR


def _sample(rng: np.random.Generator, pid: str, t: float, seq: int, back: float = 0.0) -> Record:
    """A sample at `t`, received at `t - back` (a receive clock stepped back)."""
    vitals = {
        "heart_rate": 72 + rng.normal(0, 1.5),
        "spo2": 97 + rng.normal(0, 0.4),
        "resp_rate": 15 + rng.normal(0, 0.7),
        "bp_sys": 120 + rng.normal(0, 2),
        "bp_dia": 80 + rng.normal(0, 1.5),
        "temperature": 36.8 + rng.normal(0, 0.05),
    }
    body = {"v": 1, "patient_id": pid, "t": t, "seq": seq, "vitals": vitals}
    return Record(f"vitals/{pid}", json.dumps(body).encode(), t - back)


def _episodes() -> list[Record]:
    """Four patients at 1 Hz with silences of every kind (times relative to START):

    * p1 0-600 s: silent 12 s at 200 (signal lost), 45 s at 400 (lost, window reset);
    * p2 0-300 s, then gone past the idle limit (evicted), back 500-600 s;
    * p3 from 100 s; the receive clock is 3 s behind for its samples of 350-352 s;
    * everyone silent 600-800 s (all evicted: the store is empty); p4 then starts alone
      and falls silent 12 s within its first seconds; p1 returns at 840 s.
    """
    plan: list[tuple[float, str]] = []
    for s in range(600):
        if not (200 <= s < 212 or 400 <= s < 445):
            plan.append((s, "p1"))
        if s < 300 or 500 <= s < 600:
            plan.append((s + 0.3, "p2"))
        if s >= 100:
            plan.append((s + 0.6, "p3"))
    plan += [(800 + s + 0.1, "p4") for s in range(30) if not 3 <= s < 15]
    plan += [(840 + s + 0.2, "p1") for s in range(60)]
    rng = np.random.default_rng(7)
    seqs: dict[str, int] = {}
    records = []
    for at, pid in sorted(plan):
        seqs[pid] = seqs.get(pid, -1) + 1
        back = 3.0 if pid == "p3" and 350 <= at < 353 else 0.0
        records.append(_sample(rng, pid, START + at, seqs[pid], back))
    return records


@pytest.fixture(scope="module")
def predictor() -> Predictor:
    return Predictor(load_model(default_model_path()), "cpu")


def _alerts(runner: OfflineRunner) -> list[dict[str, Any]]:
    return [a.model_dump() for a in runner.alerts]


def _write(path: Path, records: list[Record]) -> Path:
    with RecordingWriter(path, source="test") as writer:
        for record in records:
            writer.write(record)
    return path


@pytest.mark.parametrize("interval", [1.0, 0.25])
@pytest.mark.parametrize("chunk", [0, 64])
def test_jumping_housekeeping_gives_the_stepped_alerts_and_counts(
    predictor: Predictor,
    interval: float,
    chunk: int,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    """Every alert (each field, in order) and every metric sample equal those of one pass
    per interval, with signal-lost episodes, evictions (the store emptied once) and a receive
    clock stepped back; the jumping replay runs far fewer passes. Chunk 0: read from a
    recording in blocks; 64: records decoded 64 at a time."""
    settings = Settings.model_validate(
        {
            "housekeeping_interval_s": interval,
            "window": {"idle_ttl_s": 60.0, "stale_after_s": 8.0, "max_gap_s": 30.0},
        }
    )
    records = _episodes()
    expected = stepped(records, predictor, settings)
    runner = OfflineRunner(predictor, settings)
    if chunk:
        monkeypatch.setattr(offline, "DECODE_CHUNK", chunk)
        assert runner.feed(records) == len(records)
    else:
        assert runner.feed_recording(_write(tmp_path / "r.jsonl.gz", records)) == len(records)
    runner.finish()
    assert _alerts(runner) == _alerts(expected)
    assert metric_counts(runner) == metric_counts(expected)
    lost = [(a.patient_id, a.state) for a in runner.alerts if a.reason == "signal_lost"]
    assert {("p1", "raised"), ("p1", "cleared"), ("p4", "raised"), ("p4", "cleared")} <= set(lost)
    assert len(lost) >= 10
    evictions = metric_counts(runner)[("monitor_evictions_total", ())]
    assert evictions >= 5  # p2 once, then all four
    assert runner.scored > 500
    assert runner.housekeeping_passes < expected.housekeeping_passes / 20


class _Questions:
    """Count a runner's housekeeping passes and `housekeeping_would_act` questions."""

    def __init__(self, runner: OfflineRunner, monkeypatch: pytest.MonkeyPatch) -> None:
        self.asked = 0
        would_act = runner.pipeline.housekeeping_would_act

        def counted(now: float) -> bool:
            self.asked += 1
            return would_act(now)

        monkeypatch.setattr(runner.pipeline, "housekeeping_would_act", counted)


def _series(n: int, step: float) -> Iterator[Record]:
    rng = np.random.default_rng(3)
    for i in range(n):
        yield _sample(rng, "h1", START + i * step, i)


def _bursts(bursts: int, size: int, every: float) -> Iterator[Record]:
    """`bursts` bursts of `size` samples 1 s apart, one every `every` seconds."""
    rng = np.random.default_rng(5)
    for b in range(bursts):
        for k in range(size):
            yield _sample(rng, "b1", START + b * every + k, b * size + k)


def _events(runner: OfflineRunner) -> tuple[int, int, int]:
    """Signal-lost raises, their ends (cleared by data, or expired when the patient was
    evicted), and evictions."""
    lost = [a.state for a in runner.alerts if a.reason == "signal_lost"]
    evictions = int(metric_counts(runner)[("monitor_evictions_total", ())])
    return lost.count("raised"), lost.count("cleared") + lost.count("expired"), evictions


def test_three_years_hourly_take_at_most_a_pass_per_sample(
    predictor: Predictor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """26,280 hourly samples (3 years; stepping ran 94.6 million passes): every pass run
    acts (raises 'signal lost' or evicts: one patient, one event per pass) but the one that
    first sets the degraded gauge, and a few questions per sample find them."""
    n = 3 * 365 * 24
    runner = OfflineRunner(predictor, Settings())
    questions = _Questions(runner, monkeypatch)
    assert runner.feed(_series(n, HOUR)) == n
    runner.finish()
    raised, _, evictions = _events(runner)
    assert runner.housekeeping_passes <= raised + evictions + 1
    assert runner.housekeeping_passes <= n
    assert questions.asked < 20 * n
    outcomes = [
        v for (name, _), v in metric_counts(runner).items() if name == "monitor_messages_total"
    ]
    assert sum(outcomes) == n


@pytest.mark.parametrize(
    ("bursts", "size", "every"),
    [(3 * 365, 10, 86400.0), (300, 5, YEAR)],
    ids=["daily-for-3-years", "yearly-for-300-years"],
)
def test_bursts_far_apart_take_two_passes_per_silence(
    predictor: Predictor,
    monkeypatch: pytest.MonkeyPatch,
    bursts: int,
    size: int,
    every: float,
) -> None:
    """Bursts of 1 Hz samples a day or a year apart, under the defaults: each silence is
    'signal lost' 8 s after the burst (its first pass after 8 s) and an eviction an hour
    later (which ends the alert: expired), one pass each, whatever the length of the
    silence."""
    runner = OfflineRunner(predictor, Settings())
    questions = _Questions(runner, monkeypatch)
    assert runner.feed(_bursts(bursts, size, every)) == bursts * size
    runner.finish()
    assert _events(runner) == (bursts - 1, bursts - 1, bursts - 1)
    lost = [a.t for a in runner.alerts if a.reason == "signal_lost" and a.state == "raised"]
    assert lost[:2] == [START + size - 1 + 9.0, START + every + size - 1 + 9.0]
    assert runner.housekeeping_passes == 2 * (bursts - 1) + 1  # and the first gauge setting
    assert questions.asked < 10 * bursts * size  # stepping: one pass per second of the span
