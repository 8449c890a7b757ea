"""The engine's ports: what a driver gives it and what it reports through.

A transport adapter (MQTT, NATS, a recording) turns what it receives into `IngressBatch`es
and publishes the engine's events through an `AlertSink`; it owns its topic or subject
convention (the patient key of each payload). A second transport is one new adapter package
that implements these and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, TypeVar

from monitor.core.alerts import AlertEvent
from monitor.core.codec import DecodedColumns, SingleFields
from monitor.core.types import Float32Array

__all__ = [
    "AlertSink",
    "Clock",
    "Ingress",
    "IngressBatch",
    "Job",
    "Report",
    "Stages",
    "Worker",
]


class Job(Protocol):
    """What the scheduler reads of a queued job: its sample's receive time."""

    @property
    def received_at(self) -> float: ...


JobT = TypeVar("JobT", bound=Job)
JobC = TypeVar("JobC", bound=Job, contravariant=True)


@dataclass(frozen=True, slots=True)
class IngressBatch:
    """Payloads in arrival order, with their patient keys and receive times.

    Attributes:
        keys: The patient id the transport delivered each payload for (its topic's or
            subject's, by the adapter's convention), or None when it names none.
        payloads: The raw bodies.
        received_at: Receive time of each, seconds on the driver's clock.
        validated: Per payload, None or its message already validated by the source (a
            recording's block reader), or None for the whole batch.
        longest: A bound on the size of each payload with a validated message.
    """

    keys: Sequence[str | None]
    payloads: Sequence[bytes]
    received_at: Sequence[float]
    validated: Sequence[SingleFields | None] | None = None
    longest: int = 0

    def __len__(self) -> int:
        return len(self.payloads)


class Ingress(Protocol):
    """A source of batches read by a plain loop (a recording: offline replay)."""

    def __iter__(self) -> Iterator[IngressBatch]: ...


class AlertSink(Protocol):
    """Where alert events go (the daemon's log line, outbox and broker; a list offline)."""

    def publish(self, events: Sequence[AlertEvent]) -> None:
        """Take events in the order the engine decided them."""


class Clock(Protocol):
    """The engine's time: the wall clock live, a recording's receive times offline."""

    def __call__(self) -> float: ...


class Worker(Protocol):
    """The inference worker: runs one batched forward, off the driver's thread."""

    def submit(self, windows: Float32Array) -> Future[Float32Array]:
        """Start the forward of `windows` ``(B, window, F)``; its predictions ``(B, F)``."""


class Report(Protocol[JobC]):
    """How a forward ended, for the shell's log and metrics."""

    def forward_failed(self, jobs: Sequence[JobC], error: BaseException) -> None:
        """A forward raised: its jobs end as `failed` (counted by the stages)."""

    def forward_scored(
        self, jobs: Sequence[JobC], predictions: Float32Array, seconds: float
    ) -> None:
        """A forward is being scored, `seconds` after it was started (the timer's)."""


class Stages(Protocol[JobT]):
    """The synchronous stages the scheduler drives (`monitor.service.pipeline.Pipeline`)."""

    @property
    def pending(self) -> int:
        """Jobs queued in the batcher."""

    def decode(
        self,
        patient_keys: Sequence[str | None],
        payloads: Sequence[bytes],
        nows: Sequence[float],
        validated: Sequence[SingleFields | None] | None = None,
        longest: int = 0,
    ) -> DecodedColumns: ...

    def ingest(self, decoded: DecodedColumns, nows: Sequence[float]) -> list[AlertEvent]: ...

    def due(self, now: float) -> bool:
        """Whether a batch should be taken now (size reached or oldest job too old)."""

    def deadline(self) -> float | None:
        """When the oldest queued job becomes due, or None when none waits."""

    def take_batch(self, max_n: int | None = None) -> list[JobT]:
        """Remove and return up to `max_n` (None: `max_batch`) queued jobs, oldest first."""

    def stack(self, jobs: Sequence[JobT]) -> Float32Array: ...

    def score(
        self,
        jobs: Sequence[JobT],
        predictions: Float32Array,
        now: float,
        *,
        live: bool = True,
        windows: Float32Array | None = None,
    ) -> list[AlertEvent]: ...

    def inference_failed(self, jobs: Sequence[JobT]) -> None: ...

    def housekeeping(self, now: float) -> list[AlertEvent]: ...

    def housekeeping_would_act(self, now: float) -> bool: ...

    @property
    def degraded(self) -> bool:
        """Monitoring is degraded (jobs were shed)."""
