"""The pipeline reports through its ports: counts on any `Outcomes`, log lines on any
`PipelineLog`. Plain Python objects here (no prometheus_client, no structlog) count what the
daemon's prometheus metrics count for the same input, and receive the same log lines."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from monitor.core.vitals import CLINICAL_VITALS
from monitor.engine.pipeline import ORDER_SUSPECT, OUTCOMES, ModelInfo, Pipeline
from monitor.engine.ports import Outcomes, PipelineLog
from monitor.service.logs import PipelineLines
from monitor.settings import Settings
from tests.reliability.conftest import SIGMA, WINDOW, payload
from tests.reliability.inprocess import counter, make_pipeline, persistence_predictions
from tests.support.ingest import ingest_one

T0 = 1_764_000_000.0


class Tally:
    """A counter, gauge and histogram in one: what was counted, set or observed."""

    def __init__(self) -> None:
        self.count = 0.0
        self.value = 0.0
        self.observed = 0
        self.function: Callable[[], float] | None = None

    def inc(self, amount: float = 1) -> None:
        self.count += amount

    def set(self, value: float) -> None:
        self.value = value

    def set_function(self, f: Callable[[], float]) -> None:
        self.function = f

    def observe(self, amount: float) -> None:
        self.observed += 1

    def observe_many(self, values: npt.NDArray[np.float64]) -> None:
        self.observed += len(values)


class Family:
    """A labelled family of tallies."""

    def __init__(self) -> None:
        self.children: dict[tuple[str, ...], Tally] = {}

    def labels(self, *values: str) -> Tally:
        return self.children.setdefault(values, Tally())


def _family() -> Family:
    return Family()


def _tally() -> Tally:
    return Tally()


@dataclass
class PlainOutcomes:
    messages: Family = field(default_factory=_family)
    invalid: Family = field(default_factory=_family)
    dropped: Family = field(default_factory=_family)
    prediction_error: Family = field(default_factory=_family)
    end_to_end_latency: Tally = field(default_factory=_tally)
    batch_size: Tally = field(default_factory=_tally)
    alerts: Family = field(default_factory=_family)
    technical_alerts: Family = field(default_factory=_family)
    active_alerts: Family = field(default_factory=_family)
    active_patients: Tally = field(default_factory=_tally)
    pending_jobs: Tally = field(default_factory=_tally)
    patients_refused: Tally = field(default_factory=_tally)
    degraded: Tally = field(default_factory=_tally)
    sequence_gaps: Tally = field(default_factory=_tally)
    window_resets: Tally = field(default_factory=_tally)
    evictions: Tally = field(default_factory=_tally)
    device_restarts: Tally = field(default_factory=_tally)
    order_suspect: Family = field(default_factory=_family)


@dataclass
class Lines:
    """Every log line the pipeline gave, as (event, fields)."""

    seen: list[tuple[str, dict[str, object]]] = field(default_factory=list)

    def device_restart(self, seq: int) -> None:
        self.seen.append(("device_restart", {"seq": seq}))

    def order_suspect(self, kind: str, seq: int) -> None:
        self.seen.append(("order_suspect", {"kind": kind, "seq": seq}))

    def clock_offset(self, offset_s: float) -> None:
        self.seen.append(("clock_offset", {"offset_s": offset_s}))


def _plain_pipeline(outcomes: Outcomes, log: PipelineLog) -> Pipeline:
    model = ModelInfo(
        features=CLINICAL_VITALS,
        window=WINDOW,
        residual_sigma=np.asarray(SIGMA, dtype=np.float64),
        version="test",
    )
    return Pipeline(model, Settings(), outcomes, log=log)


def _drive(p: Pipeline) -> None:
    """A stream with every order and clock change the pipeline logs, and a late sample, a
    gap, a refusal, shed-free scoring and housekeeping."""

    def step(pid: str, seq: int, t: float, now: float, body: bytes | None = None) -> None:
        ingest_one(p, f"vitals/{pid}", body or payload(pid, seq, t=t), now)
        jobs = p.drain_all()
        if jobs:
            p.score(jobs, persistence_predictions(jobs), now, live=False)
        p.housekeeping(now)

    for seq in range(20):  # warm up and score
        step("a", seq, T0 + seq, T0 + seq)
    step("a", 25, T0 + 25, T0 + 25)  # 5 missed: a gap
    step("a", 3, T0 + 3, T0 + 26)  # late
    for k in range(5):  # the counter restarts, the clock goes on
        step("a", k, T0 + 30 + k, T0 + 30 + k)
    step("a", 200_010, T0 + 36, T0 + 36)  # a suspect forward seq jump
    for k in range(40):  # the clock jumps an hour ahead and stays: refused, then learned
        step("a", 200_011 + k, T0 + 3637 + k, T0 + 37 + k)
    step("b", 0, T0, T0 + 80, b"{not json")  # refused by the codec


def test_plain_outcomes_count_what_the_prometheus_metrics_count() -> None:
    """The same stream through a pipeline on plain objects and one on the daemon's
    prometheus `Metrics` gives the same counts, outcome by outcome."""
    plain, lines = PlainOutcomes(), Lines()
    _drive(_plain_pipeline(plain, lines))
    served = make_pipeline(model_window=WINDOW)
    _drive(served)

    counted = {o: plain.messages.labels(o).count for o in OUTCOMES}
    assert counted == {o: counter(served, "monitor_messages_total", outcome=o) for o in OUTCOMES}
    assert counted["scored"] > 0
    assert counted["late"] == 1
    assert counted["invalid"] > 1
    for kind in ORDER_SUSPECT:
        assert plain.order_suspect.labels(kind).count == counter(
            served, "monitor_order_suspect_total", kind=kind
        )
    assert plain.order_suspect.labels("seq_jump").count == 1
    assert plain.order_suspect.labels("clock_jump").count == 1
    assert plain.device_restarts.count == 1 == counter(served, "monitor_device_restarts_total")
    gaps = plain.sequence_gaps.count
    assert gaps == counter(served, "monitor_sequence_gaps_total")
    assert gaps >= 5  # at least the 5 missed before seq 25
    for reason in ("clock_skew", "bad_json"):
        assert plain.invalid.labels(reason).count == counter(
            served, "monitor_invalid_messages_total", reason=reason
        )
    assert plain.technical_alerts.labels("clock_offset").count == 1
    assert plain.batch_size.observed > 0
    assert plain.active_patients.function is not None
    assert plain.active_patients.function() == 1


def test_the_pipeline_logs_through_its_port() -> None:
    """Each order or clock change the pipeline reports reaches the log port once, with the
    sample's seq or the offset learned (no patient id)."""
    lines = Lines()
    _drive(_plain_pipeline(PlainOutcomes(), lines))
    events = [event for event, _ in lines.seen]
    assert events == ["device_restart", "order_suspect", "order_suspect", "clock_offset"]
    assert lines.seen[0][1] == {"seq": 0}
    assert lines.seen[1][1] == {"kind": "seq_jump", "seq": 200_010}
    # The jump is learned once it persisted (docs/time.md): suspect, and an offset.
    assert lines.seen[2][1]["kind"] == "clock_jump"
    offset = lines.seen[3][1]["offset_s"]
    assert isinstance(offset, float)
    assert abs(offset - 3600.0) < 1.0


def test_the_service_log_lines_are_structlog_events() -> None:
    """The daemon's `PipelineLog` writes the events the operators' queries name."""
    with structlog.testing.capture_logs() as captured:
        lines = PipelineLines()
        lines.device_restart(7)
        lines.order_suspect("clock_back", 9)
        lines.clock_offset(12.5)
    assert [(e["event"], e["log_level"]) for e in captured] == [
        ("device_restart", "info"),
        ("order_suspect", "info"),
        ("clock_offset", "info"),
    ]
    assert captured[0]["seq"] == 7
    assert captured[1]["kind"] == "clock_back"
    assert captured[1]["seq"] == 9
    assert captured[2]["offset_s"] == 12.5
