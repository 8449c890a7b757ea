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


def test_a_jump_forward_is_recorded_once_and_a_drift_or_a_catch_up_is_not() -> None:
    """A suspend or a step ahead past `JUMP_S` is a jump (the last reading before it, the
    step), taken once; the wall clock catching up after a step back is not one."""
    host = Host()
    clock = SteadyClock(lambda: host.wall, lambda: host.mono)
    host.tick(1.0)
    host.step_wall(1.5)  # within JUMP_S: NTP would slew this
    clock()
    assert clock.take_jumps() == []
    before = clock()
    host.step_wall(7200.0)  # two hours suspended: the monotonic clock stood still
    assert clock() == host.wall
    assert clock.take_jumps() == [(before, 7200.0)]
    assert clock.take_jumps() == []
    host.step_wall(-600.0)
    clock()
    host.step_wall(600.0)  # back where it was: no time unwatched
    clock()
    assert clock.take_jumps() == []


def _after_a_suspend(follow: bool) -> list[AlertEvent]:
    """Three patients stream for 20 s; the host sleeps two hours; two patients send again
    at once, `c2`'s device stays silent. Each second runs the daemon's housekeeping step:
    the jumps taken, and (`follow`) every receipt moved on by them, then the passes due.
    Returns the technical alert changes of the 20 s after the resume."""
    host = Host()
    clock = SteadyClock(lambda: host.wall, lambda: host.mono)
    pipeline = make_pipeline(model_window=WINDOW)
    ticks = Ticks(pipeline, 1.0, pipeline.stale_s)
    ticks.advance(clock())

    def second(seq: int, patients: list[str]) -> list[AlertEvent]:
        now = clock()
        events: list[AlertEvent] = []
        for pid in patients:
            events += ingest_one(pipeline, f"vitals/{pid}", payload(pid, seq, t=now), now)
        jobs = pipeline.drain_all()
        if jobs:
            pipeline.score(jobs, persistence_predictions(jobs), now, live=False)
        for before, step in clock.take_jumps():
            if follow:
                pipeline.shift_seen(before, step)
        events += ticks.advance(clock())
        host.tick(1.0)
        return events

    for seq in range(20):
        second(seq, ["c0", "c1", "c2"])
    host.step_wall(7200.0)
    events: list[AlertEvent] = []
    for seq in range(20, 40):
        events += second(seq, ["c0", "c1"])
    return [e for e in events if e.kind == "technical"]


def test_a_host_suspended_for_two_hours_judges_silence_from_its_return() -> None:
    """After two hours of suspend the daemon moves every receipt on by the jump: nobody is
    evicted; the two devices that go on warm up again (their windows' two-hour gap:
    `warming_up`, cleared a window later), and the one that went quiet gets `signal_lost`
    8 s (stale_after_s) after the return, open. Without it (the daemon before): the first
    pass found everyone silent for two hours, past `idle_ttl_s` (1 h): the quiet patient's
    `signal_lost` was raised with a two-hour-old time and ended `expired` in the same
    pass, the patient forgotten: nothing open, nobody watching it (and a pass that came
    before the others' first samples evicted them too)."""
    resume = T0 + 7200.0 + 20.0
    followed = _after_a_suspend(follow=True)
    assert [(e.patient_id, e.reason, e.state, e.t - resume) for e in followed] == [
        ("c0", "warming_up", "raised", 0.0),
        ("c1", "warming_up", "raised", 0.0),
        ("c0", "warming_up", "cleared", float(WINDOW)),
        ("c1", "warming_up", "cleared", float(WINDOW)),
        ("c2", "signal_lost", "raised", 8.0),
    ]
    before = [(e.patient_id, e.reason, e.state) for e in _after_a_suspend(follow=False)]
    assert ("c2", "signal_lost", "expired") in before
