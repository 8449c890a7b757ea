"""The live daemon's clock: a host clock stepped back must not stop housekeeping."""

from __future__ import annotations

from collections.abc import Callable

from monitor.core.alerts import AlertEvent
from monitor.engine.ticks import Ticks
from monitor.service.clock import SteadyClock
from tests.reliability.conftest import WINDOW, payload
from tests.reliability.inprocess import make_pipeline, persistence_predictions
from tests.support.ingest import ingest_one

T0 = 1_764_000_000.0


class Host:
    """A host's wall clock and monotonic clock, moved by the test."""

    def __init__(self) -> None:
        self.wall, self.mono = T0, 500.0

    def tick(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds

    def step_wall(self, seconds: float) -> None:
        self.wall += seconds  # an NTP step, an operator's `date -s`: monotonic time goes on


def test_the_clock_follows_the_wall_forward_and_never_goes_back() -> None:
    """Steps forward are followed (a resume from suspend); after a step back the clock goes
    on from where it was at the monotonic pace, and `behind_s` says by how much."""
    host = Host()
    clock = SteadyClock(lambda: host.wall, lambda: host.mono)
    assert clock() == T0
    host.tick(1.5)
    assert clock() == T0 + 1.5
    host.step_wall(-600.0)
    assert clock() == T0 + 1.5
    assert clock.behind_s == 600.0
    host.tick(2.0)
    assert clock() == T0 + 3.5
    host.step_wall(3600.0)
    assert clock() == host.wall
    assert clock.behind_s == 0.0


def _signal_lost_after_step(clock_of: Callable[[Host], Callable[[], float]]) -> float | None:
    """A patient streams once a second for 20 s; the host's clock steps back 10 minutes
    and the device dies in the same second. Housekeeping runs every second on the clock
    `clock_of` gives; return the seconds (of real time) from the death to `signal_lost`,
    or None when it did not come within 5 minutes."""
    host = Host()
    clock = clock_of(host)
    pipeline = make_pipeline(model_window=WINDOW)
    ticks = Ticks(pipeline, 1.0, pipeline.stale_s)
    ticks.advance(clock())
    for seq in range(20):
        now = clock()
        ingest_one(pipeline, "vitals/c1", payload("c1", seq, t=now), now)
        jobs = pipeline.drain_all()
        if jobs:
            pipeline.score(jobs, persistence_predictions(jobs), now, live=False)
        ticks.advance(now)
        host.tick(1.0)
    host.step_wall(-600.0)
    events: list[AlertEvent] = []
    for second in range(300):
        events += ticks.advance(clock())
        if any(e.reason == "signal_lost" and e.state == "raised" for e in events):
            return float(second)
        host.tick(1.0)
    return None


def test_a_host_clock_stepped_back_does_not_stop_signal_lost() -> None:
    """On the daemon's clock, `signal_lost` comes `window.stale_after_s` (8 s here) after
    the device's last sample, as without the step. On the host's wall clock (the daemon
    before) no housekeeping pass was due for the 10 minutes of the step: no patient's
    signal loss was seen for 10 minutes."""
    steady = _signal_lost_after_step(lambda host: SteadyClock(lambda: host.wall, lambda: host.mono))
    assert steady is not None
    assert 8.0 <= steady <= 10.0
    assert _signal_lost_after_step(lambda host: lambda: host.wall) is None
