"""The player's schedule on an injected clock: no drift, speed, max speed."""

from __future__ import annotations

import asyncio

import pytest

from monitor.replay.player import play
from monitor.replay.recording import Record


class FakeClock:
    """A clock that sleeping advances, plus a fixed extra cost per publish (a slow broker)."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sent_at: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds

    async def publish(self, record: Record) -> None:
        self.sent_at.append(self.now)
        self.now += 0.03


RECORDS = [Record("t", b"", 50.0 + dt) for dt in (0.0, 1.0, 1.0, 2.5, 4.0)]


def test_sends_at_recorded_offsets_divided_by_speed_without_drift() -> None:
    """At 2x, send times are start + offset / 2 even though each publish costs 30 ms."""
    clock = FakeClock()
    n = asyncio.run(play(RECORDS, clock.publish, speed=2.0, clock=clock, sleep=clock.sleep))
    assert n == 5
    assert [round(t - 100.0, 9) for t in clock.sent_at] == [0.0, 0.5, 0.53, 1.25, 2.0]


def test_max_speed_never_sleeps_and_bad_speed_is_refused() -> None:
    """speed=None publishes back to back; a non-positive speed raises ValueError."""
    clock = FakeClock()
    asyncio.run(play(RECORDS, clock.publish, speed=None, clock=clock, sleep=clock.sleep))
    assert [round(t - 100.0, 9) for t in clock.sent_at] == [0.0, 0.03, 0.06, 0.09, 0.12]
    with pytest.raises(ValueError, match="speed must be positive"):
        asyncio.run(play(RECORDS, clock.publish, speed=0.0))
