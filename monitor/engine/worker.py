"""The inference worker port on an executor (one thread: `monitor.tuning`, PERFORMANCE.md)."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Executor, Future

from monitor.core.types import Float32Array

__all__ = ["ThreadWorker"]


class ThreadWorker:
    """Run forwards on an executor (`Worker`).

    Args:
        executor: Where forwards run (the inference thread).
        predict: One batched forward: windows ``(B, window, F)`` -> predictions ``(B, F)``.
        on_done: Told when each forward ends, on the executor's thread (the live shell
            wakes its event loop there), or None.
    """

    def __init__(
        self,
        executor: Executor,
        predict: Callable[[Float32Array], Float32Array],
        on_done: Callable[[Future[Float32Array]], object] | None = None,
    ) -> None:
        self._executor = executor
        self._predict = predict
        self._on_done = on_done

    def submit(self, windows: Float32Array) -> Future[Float32Array]:
        """Start the forward of `windows` on the executor."""
        future = self._executor.submit(self._predict, windows)
        if self._on_done is not None:
            future.add_done_callback(self._on_done)
        return future
