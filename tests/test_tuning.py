"""Interpreter tuning (monitor/tuning.py): applied inside a block, restored after it."""

from __future__ import annotations

import gc
import platform
import sys

import pytest

from monitor.tuning import keep_heap_memory, replay_tuning, serving_tuning


def test_keep_heap_memory_applies_on_glibc() -> None:
    """On Linux with glibc (CI, the container image), both mallopt calls succeed."""
    if not sys.platform.startswith("linux") or platform.libc_ver()[0] != "glibc":
        pytest.skip("glibc only")
    assert keep_heap_memory() is True


def test_replay_tuning_restores_the_interpreter_settings() -> None:
    """Inside: a higher GC threshold and a shorter switch interval; after: the old ones."""
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    with replay_tuning(gc_threshold=threshold[0] + 1000, switch_interval_s=interval / 2):
        assert gc.get_threshold()[0] == threshold[0] + 1000
        assert sys.getswitchinterval() == pytest.approx(interval / 2)
    assert (gc.get_threshold(), sys.getswitchinterval()) == (threshold, interval)


def test_serving_tuning_freezes_startup_objects_and_restores() -> None:
    """Inside: what was loaded is frozen out of the collector and the switch interval is
    shorter; after: nothing frozen and the old interval, also when the block raises."""
    interval = sys.getswitchinterval()
    seen: list[tuple[int, float]] = []

    def serve() -> None:
        with serving_tuning(interval / 2):
            seen.append((gc.get_freeze_count(), sys.getswitchinterval()))
            raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        serve()
    assert seen[0][0] > 0
    assert seen[0][1] == pytest.approx(interval / 2)
    assert gc.get_freeze_count() == 0
    assert sys.getswitchinterval() == interval
