"""The live daemon's clock: wall-clock seconds that never go back.

The daemon stamps each receipt, schedules its batches and runs its housekeeping passes on
one clock. On the host's wall clock, a step back (an NTP correction, an operator setting
the time, a VM's clock fixed after a resume) of X seconds stopped every housekeeping pass
for X seconds (pass k is due at a time the clock shows again only X seconds later) and
left each patient last seen before the step looking seen "in the future": no `signal_lost`
for anyone while it lasted. `SteadyClock` follows the wall clock forward (a resume from
suspend, a step ahead) but, when it steps back, goes on from where it was at the pace of
the monotonic clock, so every interval the engine measures stays true.

A step forward (a resume from suspend: the monotonic clock stands still while the host
sleeps; an NTP step ahead) is followed, and recorded (`jumps`): the daemon did not watch
during it, so it moves every patient's last receipt on by the step (`Pipeline.shift_seen`),
as it does for the time a snapshot spent on disk. Before, the first housekeeping pass after
a step of X seconds found every patient silent for X: `signal_lost` raised for the whole
ward past `window.stale_after_s`, and past `window.idle_ttl_s` (1 h) every patient evicted,
to warm up again as a new one.
"""

from __future__ import annotations

import time
from collections.abc import Callable

__all__ = ["JUMP_S", "SteadyClock"]

#: The wall clock ahead of this clock by more than this at one reading is a jump (readings
#: come at least once a second; NTP slews at most 0.5 ms a second).
JUMP_S = 2.0


class SteadyClock:
    """``max(wall clock, last reading + monotonic time since)``: unix seconds, never back.

    Args:
        wall: The wall clock (unix seconds).
        monotonic: A monotonic clock (seconds).

    Attributes:
        behind_s: How far the wall clock is behind this clock now (0 when it is not), as of
            the last reading: the sum of the steps back it has not caught up with.
        jumps: The jumps forward not yet taken (`take_jumps`): (the last reading before
            it, the seconds it jumped).
    """

    __slots__ = ("_last", "_last_mono", "_monotonic", "_wall", "behind_s", "jumps")

    def __init__(
        self,
        wall: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._wall, self._monotonic = wall, monotonic
        self._last, self._last_mono = wall(), monotonic()
        self.behind_s = 0.0
        self.jumps: list[tuple[float, float]] = []

    def __call__(self) -> float:
        wall, mono = self._wall(), self._monotonic()
        steady = self._last + max(0.0, mono - self._last_mono)
        if wall - steady > JUMP_S:
            self.jumps.append((self._last, wall - steady))
        now = max(wall, steady)
        self.behind_s = now - wall
        self._last, self._last_mono = now, mono
        return now

    def take_jumps(self) -> list[tuple[float, float]]:
        """The jumps forward since the last call (and forget them)."""
        jumps, self.jumps = self.jumps, []
        return jumps
