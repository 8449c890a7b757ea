"""The engine's ports: what a driver gives it and what it reports through.

A transport adapter (MQTT, NATS, a recording) turns what it receives into `IngressBatch`es
and publishes the engine's events through an `AlertSink`; it owns its topic or subject
convention (the patient key of each payload). A second transport is one new adapter package
that implements these and nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Protocol, TypeVar

from monitor.core.alerts import AlertEvent
from monitor.core.codec import DecodedColumns, SingleFields
from monitor.core.detector import DetectorConfig
from monitor.core.types import Float32Array, FloatArray
from monitor.core.vitals import Registry

__all__ = [
    "AlertSink",
    "BatchHistogram",
    "BatchLimits",
    "Clock",
    "Counter",
    "Gauge",
    "Histogram",
    "IngestLimits",
    "Ingress",
    "IngressBatch",
    "Job",
    "Labelled",
    "Outcomes",
    "PipelineLog",
    "PipelineSettings",
    "Report",
    "Stages",
    "WindowLimits",
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
    """The synchronous stages the scheduler drives (`monitor.engine.pipeline.Pipeline`)."""

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

    def inference_failed(self, jobs: Sequence[JobT], now: float) -> list[AlertEvent]:
        """A batch whose forward raised: its jobs end `failed`; the alert changes it makes."""

    def housekeeping(self, now: float) -> list[AlertEvent]: ...

    def housekeeping_would_act(self, now: float) -> bool: ...

    @property
    def degraded(self) -> bool:
        """Monitoring is degraded (jobs were shed)."""


# The outcomes port: what the pipeline counts on. Structural, so that the service passes
# prometheus-client's own objects (and its `BatchHistogram`): each count on the hot path is
# the metric's own call, with no wrapper in between. Parameters the pipeline passes by
# position are positional-only, so an implementation may name them as it likes.

M = TypeVar("M", covariant=True)


class Counter(Protocol):
    """A monotonic count."""

    def inc(self, amount: float = 1, /) -> None: ...


class Gauge(Protocol):
    """A level: set now, or read through a function when exported."""

    def set(self, value: float, /) -> None: ...

    def set_function(self, f: Callable[[], float], /) -> None: ...


class Histogram(Protocol):
    """A distribution observed one value at a time."""

    def observe(self, amount: float, /) -> None: ...


class BatchHistogram(Protocol):
    """A distribution observed a numpy batch at a time."""

    def observe_many(self, values: FloatArray, /) -> None: ...


class Labelled(Protocol[M]):
    """A family of metrics over label values from small fixed sets (never a patient id)."""

    def labels(self, *values: str) -> M: ...


class Outcomes(Protocol):
    """Where the pipeline counts every unit's outcome and what happened on the way
    (`monitor.service.metrics.Metrics` in the daemon; names and meanings in
    docs/metrics.md)."""

    @property
    def messages(self) -> Labelled[Counter]:
        """Final outcome of every received unit, by outcome."""

    @property
    def invalid(self) -> Labelled[Counter]:
        """Refused payloads and samples, by reason."""

    @property
    def artifacts(self) -> Labelled[Counter]:
        """Implausible values dropped from payloads scored on their other vitals, by vital."""

    @property
    def dropped(self) -> Labelled[Counter]:
        """Payloads the shell dropped before decoding, by reason (series created here)."""

    @property
    def prediction_error(self) -> Labelled[BatchHistogram]:
        """|z| per vital."""

    @property
    def end_to_end_latency(self) -> BatchHistogram:
        """Receive to verdict, seconds (live only)."""

    @property
    def batch_size(self) -> Histogram:
        """Jobs per scored batch."""

    @property
    def alerts(self) -> Labelled[Counter]:
        """Physiological alerts raised, by vital and severity."""

    @property
    def technical_alerts(self) -> Labelled[Counter]:
        """Technical alerts raised, by reason."""

    @property
    def active_alerts(self) -> Labelled[Gauge]:
        """Alerts open now, by kind."""

    @property
    def active_patients(self) -> Gauge:
        """Patients with a window (read when exported)."""

    @property
    def pending_jobs(self) -> Gauge:
        """Jobs in the batcher (read when exported)."""

    @property
    def patients_refused(self) -> Gauge:
        """Patients with an open patient_refused alert (read when exported)."""

    @property
    def degraded(self) -> Gauge:
        """1 while jobs are being shed."""

    @property
    def inference_stalled(self) -> Gauge:
        """1 while a forward has run past the stall limit (`Pipeline.inference_stalled`)."""

    @property
    def sequence_gaps(self) -> Counter:
        """Sequence numbers skipped."""

    @property
    def window_resets(self) -> Counter:
        """Windows reset after a gap."""

    @property
    def evictions(self) -> Counter:
        """Patients evicted."""

    @property
    def device_restarts(self) -> Counter:
        """Devices that restarted their sequence counter."""

    @property
    def order_suspect(self) -> Labelled[Counter]:
        """Samples accepted across a suspect order change, by kind."""


class PipelineLog(Protocol):
    """The pipeline's few log lines (never a patient id: the counters say which kind)."""

    def device_restart(self, seq: int) -> None:
        """A device restarted its sequence counter (`seq`: the first after the restart)."""

    def order_suspect(self, kind: str, seq: int) -> None:
        """A sample was accepted across a suspect order change (`ORDER_SUSPECT`)."""

    def clock_offset(self, offset_s: float) -> None:
        """A patient's device clock was found offset by `offset_s` (docs/time.md)."""


# What the pipeline reads of the settings (`monitor.settings.Settings` satisfies it; the
# engine does not import the settings module, which holds the transports' sections).


class IngestLimits(Protocol):
    """The codec's and the window store's bounds on what is taken."""

    @property
    def max_payload_bytes(self) -> int: ...

    @property
    def max_future_skew_s(self) -> float: ...

    @property
    def max_age_s(self) -> float: ...

    @property
    def max_clock_offset_s(self) -> float: ...

    @property
    def clock_offset_alert_s(self) -> float: ...


class WindowLimits(Protocol):
    """The window store's limits."""

    @property
    def max_patients(self) -> int: ...

    @property
    def idle_ttl_s(self) -> float: ...

    @property
    def max_seq_jump(self) -> int: ...

    @property
    def vital_lost_intervals(self) -> float | None: ...

    def gap_s(self, sample_period_s: float) -> float: ...

    def stale_s(self, sample_period_s: float) -> float: ...


class BatchLimits(Protocol):
    """The micro-batcher's limits."""

    @property
    def max_batch(self) -> int: ...

    @property
    def max_wait_ms(self) -> float: ...

    @property
    def max_pending(self) -> int: ...


class PipelineSettings(Protocol):
    """The settings the pipeline is built from."""

    @property
    def ingest(self) -> IngestLimits: ...

    @property
    def window(self) -> WindowLimits: ...

    @property
    def batch(self) -> BatchLimits: ...

    @property
    def detector(self) -> DetectorConfig: ...

    def registry(self) -> Registry:
        """The vitals and the configured signals."""
