"""Interpreter tuning for the two hot loops: the live daemon and offline replay.

Both run Python on one thread (the event loop, or the replay loop) beside an inference
thread that takes the GIL back after each numpy and torch call of a forward. The settings
here are process-wide, so each is applied inside a block and restored on exit (except
`keep_heap_memory`, which glibc cannot undo). The measurements behind each value are in
docs/benchmarks.md ("Figures moved from code comments").
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = [
    "GC_THRESHOLD",
    "SWITCH_INTERVAL_S",
    "keep_heap_memory",
    "replay_tuning",
    "serving_tuning",
]

#: GIL switch interval while serving or replaying, seconds (CPython's default is 0.005).
#: While the main thread runs Python the inference thread waits up to this long each time it
#: wants the GIL back, several times per forward: the default made forwards several times
#: slower in wall time than in CPU time.
SWITCH_INTERVAL_S = 0.0005

#: Young-generation GC threshold while a replay feeds records (CPython's default is 700).
#: A replay allocates a few short-lived objects per sample, nearly all freed by reference
#: counting; at the default a young collection runs every 700 allocations for nothing.
GC_THRESHOLD = 50_000

# glibc `mallopt` parameters (malloc.h) and the values `keep_heap_memory` sets.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3
_MMAP_THRESHOLD = 32 << 20  # glibc's largest on 64-bit systems
_TRIM_THRESHOLD = 256 << 20


def keep_heap_memory() -> bool:
    """Let glibc's malloc reuse freed memory for large arrays instead of unmapping it.

    Every batch allocates arrays of a few MiB (windows, model inputs). glibc serves those
    with fresh `mmap`s until its adaptive threshold has grown past them, and returns freed
    heap tops to the OS; each fresh page then faults on first touch, so the first replay in
    a process ran slower than the later ones. Process-wide and kept (mallopt cannot be
    undone; it also ends the adaptation); freed memory is kept for reuse rather than
    returned to the OS.

    Returns:
        Whether it was applied (False where the C library is not glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt if name else None
    except (OSError, AttributeError):
        mallopt = None
    if mallopt is None:
        return False
    ok = mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)
    return bool(ok)


@contextmanager
def replay_tuning(
    gc_threshold: int = GC_THRESHOLD, switch_interval_s: float = SWITCH_INTERVAL_S
) -> Iterator[None]:
    """Tune the interpreter for a replay inside the block; restore it on exit.

    `keep_heap_memory` (process-wide, kept after the block), a higher young-generation GC
    threshold and a shorter GIL switch interval.

    Args:
        gc_threshold: Young-generation threshold (never lowered below the current one).
        switch_interval_s: GIL switch interval (never raised above the current one).
    """
    keep_heap_memory()
    threshold, interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(max(gc_threshold, threshold[0]), *threshold[1:])
    sys.setswitchinterval(min(switch_interval_s, interval))
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        sys.setswitchinterval(interval)


@contextmanager
def serving_tuning(switch_interval_s: float = SWITCH_INTERVAL_S) -> Iterator[None]:
    """Tune the interpreter for serving inside the block; restore it on exit.

    A shorter GIL switch interval, and everything loaded at startup (torch, the model, the
    libraries) frozen out of the collector: otherwise each full collection walks all of it
    with the event loop stopped.

    Args:
        switch_interval_s: GIL switch interval (never raised above the current one).
    """
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(switch_interval_s, interval))
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        sys.setswitchinterval(interval)
