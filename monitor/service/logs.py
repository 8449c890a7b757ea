"""Logging: structlog, configured once at startup; JSON lines when stdout is not a TTY.

Patient ids never reach a log line in clear: `Pseudonymizer` replaces them with a keyed
hash (HMAC-SHA256), stable within a process (or across runs with a configured key).
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
import sys
import time
from typing import Any

import structlog

from monitor.settings import LogSettings


def configure_logging(settings: LogSettings) -> None:
    """Configure structlog for the process (call once, at startup)."""
    level = getattr(logging, settings.level.upper())
    as_json = settings.format == "json" or (settings.format == "auto" and not sys.stdout.isatty())
    renderer: Any = (
        structlog.processors.JSONRenderer() if as_json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(level),
        logger_factory=structlog.PrintLoggerFactory(sys.stdout),
        cache_logger_on_first_use=True,
    )


class Pseudonymizer:
    """Keyed-hash pseudonyms for patient ids in logs.

    Args:
        key: Secret key; a random one per process when None.
    """

    def __init__(self, key: bytes | None = None) -> None:
        self._key = key if key is not None else secrets.token_bytes(32)
        self._cache: dict[str, str] = {}

    def __call__(self, patient_id: str | None) -> str | None:
        """Return ``pt-<12 hex>`` for an id (None stays None)."""
        if patient_id is None:
            return None
        cached = self._cache.get(patient_id)
        if cached is None:
            digest = hmac.new(self._key, patient_id.encode(), hashlib.sha256).hexdigest()
            cached = f"pt-{digest[:12]}"
            if len(self._cache) < 100_000:
                self._cache[patient_id] = cached
        return cached


class RateLimiter:
    """Allow one event per key per interval; count what was suppressed meanwhile.

    Args:
        interval_s: Minimum seconds between two allowed events of one key.
    """

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._last: dict[str, float] = {}
        self._suppressed: dict[str, int] = {}

    def allow(self, key: str, now: float | None = None) -> int | None:
        """Return the number suppressed since the last allowed event, or None to suppress."""
        now = time.monotonic() if now is None else now
        last = self._last.get(key)
        if last is not None and now - last < self.interval_s:
            self._suppressed[key] = self._suppressed.get(key, 0) + 1
            return None
        self._last[key] = now
        return self._suppressed.pop(key, 0)


class PipelineLines:
    """The pipeline's log lines on structlog (`monitor.engine.ports.PipelineLog`).

    No patient id in any of them (docs/reliability.md): the counters say which kind.
    """

    def __init__(self) -> None:
        self._log = structlog.get_logger("monitor")

    def device_restart(self, seq: int) -> None:
        """A device restarted its sequence counter."""
        self._log.info("device_restart", seq=seq)

    def order_suspect(self, kind: str, seq: int) -> None:
        """A sample was accepted across a suspect order change."""
        self._log.info("order_suspect", kind=kind, seq=seq)

    def clock_offset(self, offset_s: float) -> None:
        """A device clock was found offset."""
        self._log.info("clock_offset", offset_s=offset_s)
