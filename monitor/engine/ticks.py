"""Housekeeping passes on an injected clock.

Pass k is due at ``origin + k * interval`` (origin: the first time the clock showed). On a
virtual clock (offline replay, stream recovery) only passes that act run
(`Stages.housekeeping_would_act`: evict an idle patient, raise 'signal lost', end a refused
episode); the others would only set the degraded gauge to the value it has, so the last of
a skipped stretch runs when the gauge differs. The alerts, outcomes and metrics are those of
running every pass, one per interval, while the cost follows the events, not the span: a
recording spanning years takes a few passes per sample.
"""

from __future__ import annotations

from typing import Any

from monitor.core.alerts import AlertEvent
from monitor.engine.ports import Stages

__all__ = ["Ticks"]


class Ticks:
    """The housekeeping schedule of one engine.

    Args:
        stages: The pipeline.
        interval_s: Seconds between passes.
        quiet_s: No pass acts for a patient seen within this long (the shorter of the
            staleness and idle limits).
    """

    def __init__(self, stages: Stages[Any], interval_s: float, quiet_s: float) -> None:
        self._stages = stages
        self._interval = interval_s
        self._quiet_s = quiet_s
        self._origin: float | None = None
        self._pass = 1  # the next pass, due at `_due`
        self._due = 0.0
        # The degraded gauge as the last pass run set it (None: no pass ran yet).
        self._gauge: bool | None = None
        #: Housekeeping passes run, for tests and benchmarks.
        self.passes = 0

    def advance(self, now: float) -> list[AlertEvent]:
        """Run the passes due by `now` that act; return their events."""
        if self._origin is None:
            self._origin = now
            self._set_pass(1)
        if now < self._due:
            return []
        events: list[AlertEvent] = []
        end = self._first_pass_after(now)
        while self._pass < end:
            k = self._first_acting(self._pass, end)
            if k > self._pass and self._gauge != self._stages.degraded:
                events += self._run_pass(k - 1)  # sets the gauge as the skipped passes would
            if k == end:
                break
            events += self._run_pass(k)
            self._set_pass(k + 1)
        self._set_pass(end)
        return events

    def spans_acting_pass(self, first: float, last: float) -> bool:
        """Whether samples received from `first` to `last` (in order) would span a pass that
        might act, one due after `first` (`advance(first)` ran) and by `last`.

        Asked now: the samples make the patients held fresher, so a pass that cannot act
        now cannot act then. A patient they admit is last seen at `first` or later, so no
        pass within `quiet_s` after `first` can act for it either; beyond that the answer is
        yes (without this, a run starting on an empty store, as at the start of a
        recording, skipped every pass it spanned).
        """
        k = self._first_pass_after(last) - 1  # the last pass due by `last`
        if k < self._pass:
            return False
        if self._stages.degraded:
            return True
        at = self._pass_time(k)
        return at - first > self._quiet_s or self._stages.housekeeping_would_act(at)

    def _pass_time(self, k: int) -> float:
        assert self._origin is not None
        return self._origin + k * self._interval

    def _set_pass(self, k: int) -> None:
        self._pass, self._due = k, self._pass_time(k)

    def _run_pass(self, k: int) -> list[AlertEvent]:
        events = self._stages.housekeeping(self._pass_time(k))
        self._gauge = self._stages.degraded
        self.passes += 1
        return events

    def _first_pass_after(self, now: float) -> int:
        """The first pass (from the next one on) due after `now`."""
        assert self._origin is not None
        k = max(self._pass, int((now - self._origin) // self._interval))
        while k > self._pass and self._pass_time(k - 1) > now:
            k -= 1
        while self._pass_time(k) <= now:
            k += 1
        return k

    def _first_acting(self, start: int, end: int) -> int:
        """The first pass in [start, end) that would act, or `end` when none would.

        For a given state a later pass can only act more (patients only grow staler: an
        idle or silent patient stays so), so a galloping search finds it with about
        2 log2(k - start) questions, and the answer that none acts takes two.
        """
        would_act = self._stages.housekeeping_would_act
        if start >= end or would_act(self._pass_time(start)):
            return start
        if not would_act(self._pass_time(end - 1)):  # the common answer, in one question
            return end
        low, step = start, 1  # low: known not to act
        while True:
            probe = low + step
            if probe >= end:
                high = end
                break
            if would_act(self._pass_time(probe)):
                high = probe
                break
            low, step = probe, step * 2
        while high - low > 1:
            middle = (low + high) // 2
            if would_act(self._pass_time(middle)):
                high = middle
            else:
                low = middle
        return high
