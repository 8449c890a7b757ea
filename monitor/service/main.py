"""Startup: settings -> logging -> model -> daemon on an event loop (uvloop when present)."""

from __future__ import annotations

import asyncio

from prometheus_client import disable_created_metrics

from monitor.model.predictor import Predictor
from monitor.model.store import default_model_path, load_model
from monitor.service.app import Daemon, InferenceHook
from monitor.service.logs import configure_logging
from monitor.settings import Settings


def build_daemon(settings: Settings, inference_hook: InferenceHook | None = None) -> Daemon:
    """Load the model (failing with a clear `ModelLoadError`) and build the daemon.

    Args:
        settings: The daemon's settings.
        inference_hook: Called after each forward with its duration (a test's fault
            injection: tests/support/slowed_run.py).
    """
    path = settings.model.path or default_model_path()
    loaded = load_model(path)
    predictor = Predictor(loaded, settings.model.device, settings.model.backend)
    return Daemon(settings, predictor, inference_hook=inference_hook)


def run_daemon(settings: Settings) -> int:
    """Run the daemon until SIGTERM/SIGINT; return its exit code."""
    configure_logging(settings.log)
    # `_created` series double the exposition and no dashboard uses them.
    disable_created_metrics()  # type: ignore[no-untyped-call]
    daemon = build_daemon(settings)
    try:
        import uvloop
    except ImportError:  # pragma: no cover - uvloop is a dependency on POSIX
        return asyncio.run(daemon.serve())
    return uvloop.run(daemon.serve())
