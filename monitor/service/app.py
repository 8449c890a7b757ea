"""The daemon's lifecycle: startup -> serve -> graceful shutdown.

Tasks on one event loop, data flowing one way:

* intake: the live transport (the engine's `LiveTransport` port, chosen by the composition
  root `service.main`) connects, subscribes and reconnects; the daemon is its `Shell`: it
  takes every keyed payload into a counting bounded queue and feeds the engine from it in
  bursts, each an `IngressBatch` stamped with the wall clock;
* inference (callbacks, no task): batched forwards on a single worker thread, started after
  each burst, when a forward ends or when a batch's time is up; then the detector;
* publisher: alert events to the transport's address for their patient (MQTT:
  ``alerts/<patient_id>``, QoS 1), held while disconnected and kept in a durable outbox
  until acknowledged (`service.alerting`);
* housekeeping: the engine's `Ticks` on the wall clock (idle eviction, 'signal lost'),
  readiness, event-loop lag.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import numpy as np
import structlog
from prometheus_client import CollectorRegistry

from monitor.core.alerts import AlertEvent, OpenAlertsMessage
from monitor.core.codec import Rejection
from monitor.engine.pipeline import Job, Pipeline, model_info_from_card
from monitor.engine.ports import IngressBatch
from monitor.engine.scheduler import Scheduler
from monitor.engine.ticks import Ticks
from monitor.engine.transport import AlertPublisher, Keyed, Link, LiveTransport
from monitor.engine.worker import ThreadWorker
from monitor.model.predictor import Predictor
from monitor.service.alerting import AlertSink
from monitor.service.clock import SteadyClock
from monitor.service.http import HttpServer
from monitor.service.logs import PipelineLines, Pseudonymizer, RateLimiter
from monitor.service.metrics import Metrics
from monitor.service.notify import SystemdNotifier
from monitor.service.outbox import Outbox, OutboxError
from monitor.service.shard import Recovery, ShardLabels
from monitor.service.snapshot import Checkpoints, restore_on_start, save_on_stop
from monitor.service.stuck_exit import StuckExit
from monitor.settings import Settings
from monitor.tuning import serving_tuning

log = structlog.get_logger("monitor")

#: Called after each forward with its duration; the overload test makes inference slower.
InferenceHook = Callable[[float], None]
# One burst handled without yielding: 256 x ~20-40 us bounds the stall to ~5-10 ms, so
# keepalives and /metrics are served under overload (docs/reliability.md, item 6).
_DRAIN_MAX = 256
# Messages decoded and ingested as one batch: a finished forward is noticed between two
# batches of a burst, not after the whole burst (the inference thread idles until then).
_INGEST_CHUNK = 64
# Forwards queued on the inference thread: with two, the next batch is there when one ends
# and the thread never waits for the event loop to score and hand it more.
_IN_FLIGHT = 2
#: Wait between subscribing and the catch-up replay (see `Daemon.going_live`).
_STREAM_SETTLE_S = 0.25
_REFUSAL_DETAIL = {
    "topic_not_utf8": "the MQTT topic is not valid UTF-8",
    "wrong_partition": "the topic's partition is not the patient id's hash (or not this shard's)",
}


class CountingQueue:
    """The daemon's bounded intake: counts every payload offered and every one dropped.

    The transport hands incoming payloads, keyed by patient id, to `put` (an MQTT QoS 1
    message is acknowledged by then); what does not fit is dropped, counted as
    `monitor_received_total` and `monitor_dropped_messages_total{reason="queue_full"}`
    (outcome `dropped`), never silently.
    A deque and an event set when it stops being empty: no task wake-up per message.

    Args:
        metrics: Where the counts go.
        maxsize: Most payloads held (`ingest.queue_size`).
    """

    def __init__(self, metrics: Metrics, maxsize: int) -> None:
        self.maxsize = maxsize
        self.ready = asyncio.Event()
        self._items: deque[Keyed] = deque()
        self._received = metrics.received
        self._dropped = metrics.dropped.labels("queue_full")
        self._dropped_outcome = metrics.messages.labels("dropped")

    def __len__(self) -> int:
        return len(self._items)

    def put(self, messages: list[Keyed]) -> None:
        """Count and queue (patient key, payload) pairs; count the ones past `maxsize`
        dropped."""
        n = len(messages)
        self._received.inc(n)
        room = self.maxsize - len(self._items)
        if n > room:
            self._dropped.inc(n - room)
            self._dropped_outcome.inc(n - room)
            messages = messages[:room]
        if messages:
            self._items.extend(messages)
            self.ready.set()

    def take(self, n: int) -> list[Keyed]:
        """Remove and return the oldest `n` (patient key, payload) pairs (fewer if fewer
        wait)."""
        items = self._items
        return [items.popleft() for _ in range(min(n, len(items)))]


class Daemon:
    """`monitor run`: the long-running service, the shell of its live transport.

    Args:
        settings: Validated settings.
        predictor: The loaded model, ready to predict.
        transport: Connects, subscribes, reconnects and delivers (`service.main` picks it).
        registry: Metrics registry (a fresh one per daemon).
        inference_hook: Test hook called after each forward with its duration (seconds).
    """

    def __init__(
        self,
        settings: Settings,
        predictor: Predictor,
        transport: LiveTransport,
        registry: CollectorRegistry | None = None,
        inference_hook: InferenceHook | None = None,
    ) -> None:
        self.settings = settings
        self.predictor = predictor
        self.transport = transport
        shard = settings.shard
        exposed = registry or CollectorRegistry()
        if shard.enabled:
            # Every metric carries the shard's label: its own registry, exposed labelled.
            self.metrics = Metrics.create(CollectorRegistry())
            exposed.register(ShardLabels(self.metrics.registry, shard.label()))
        else:
            self.metrics = Metrics.create(exposed)
        self._inference_hook = inference_hook
        key = settings.log.pseudonym_key
        self.pseudonym = Pseudonymizer(key.get_secret_value().encode() if key else None)
        self._limiter = RateLimiter(settings.log.invalid_log_interval_s)
        self.pipeline = Pipeline(
            model_info_from_card(predictor.card),
            settings,
            self.metrics,
            self._log_rejection,
            log=PipelineLines(),
        )
        self.http = HttpServer(
            settings.metrics.host,
            settings.metrics.port,
            exposed,
            self.is_ready,
            idle_timeout_s=settings.metrics.idle_timeout_s,
            max_connections=settings.metrics.max_connections,
            is_alive=self.is_alive,
        )
        # Read at scrape time, on the HTTP thread: never stale, even with a stuck loop.
        self.metrics.ready.set_function(lambda: 1 if self.is_ready() else 0)
        self.metrics.alive.set_function(lambda: 1 if self.is_alive() else 0)
        self._queue = CountingQueue(self.metrics, settings.ingest.queue_size)
        #: The shell's side of intake: the transport hands each block of keyed payloads here.
        self.received = self._queue.put
        self._executor = ThreadPoolExecutor(1, "inference", initializer=one_inference_thread)
        self._recovery: Recovery | None = None
        self._recovering = False
        self._recovered = False
        if shard.enabled and settings.nats.url:
            self._recovery = Recovery.for_shard(
                settings,
                self.pipeline,
                ThreadWorker(self._executor, self._predict),
                self._emit,
                self.metrics,
                record=lambda events: self.alerts.record(events),
            )
        self._publisher: AlertPublisher | None = None
        #: Receipts, batches and housekeeping: the wall clock, never going back (a host
        #: clock stepped back would stop housekeeping for as long: `service.clock`).
        self.clock = SteadyClock()
        self._stop = asyncio.Event()
        self._stop_deadline: float | None = None  # monotonic; set by the first stop request
        self._intake_task: asyncio.Task[None] | None = None
        self._task_failed = False  # a background task ended while serving: exit code 1
        self._loop: asyncio.AbstractEventLoop | None = None
        #: The engine: forwards on the inference thread, scored in batch order.
        self.scheduler: Scheduler[Job] = Scheduler(
            self.pipeline,
            ThreadWorker(self._executor, self._predict, self._on_forward_done),
            self,
            clock=self.clock,
            timer=time.perf_counter,
            live=True,
        )
        #: Housekeeping passes, on the wall clock (`_housekeeping`).
        self.ticks = Ticks(
            self.pipeline,
            settings.housekeeping_interval_s,
            min(self.pipeline.stale_s, settings.window.idle_ttl_s),
        )
        self._forward_done = False  # set on the inference thread when the forward ends
        state = settings.state
        #: The snapshot written while serving (at housekeeping passes), for a crash.
        self.checkpoints = Checkpoints(
            state.snapshot_path,
            state.checkpoint_interval_s if state.snapshot else 0.0,
            self._snapshot_written,
        )
        # Liveness (`is_alive`, on the HTTP thread), on `time.perf_counter` as the
        # scheduler's timer: the last housekeeping pass, and when the oldest forward in
        # flight at that pass was started (None: none was).
        self._progress = time.perf_counter()
        self._forward_since: float | None = None
        #: systemd's READY/WATCHDOG/STOPPING notifications (a no-op outside systemd).
        self.notifier = SystemdNotifier()
        #: Exit once stuck for `metrics.stuck_exit_s` (Compose restarts on exit only).
        stuck_exit_s = settings.metrics.stuck_exit_s
        self._stuck_exit = (
            StuckExit(self.is_alive, stuck_exit_s) if stuck_exit_s is not None else None
        )
        self._batch_timer: asyncio.TimerHandle | None = None
        self._final = False  # shutting down: batches run through `final_flush` only
        self._connected = asyncio.Event()
        # Technical alerts (signal lost, monitoring degraded) jump ahead of a backlog of
        # physiological ones: under overload they are the news that matters.
        self.alerts = AlertSink(
            self.metrics,
            address=transport.alert_address,
            max_pending=settings.alerts.max_pending,
            outbox=None,  # attached by `serve`: no work in the constructor
            state_address=transport.state_address if settings.alerts.state else None,
        )

    # -- lifecycle -------------------------------------------------------------------------

    def is_ready(self) -> bool:
        """Alive, model loaded, transport connected, inference keeping up, not failing and
        not stalled, and alerts delivered (none refused by the broker and not delivered
        since)."""
        pipeline = self.pipeline
        failing = pipeline.degraded or pipeline.inference_failing or pipeline.stalled
        failing = failing or self.alerts.refusing
        return self._connected.is_set() and not failing and self.is_alive()

    def is_alive(self) -> bool:
        """Making progress (/healthz): a housekeeping pass within `metrics.stuck_after_s`
        (the event loop runs) and no forward in flight at it running for as long
        (inference is not hung). Only a restart ends either, so past that a supervisor
        restarts the daemon (the stalled forward was reported `stall_after_s` into it)."""
        limit = self.settings.metrics.stuck_after_s
        now = time.perf_counter()
        since = self._forward_since
        return now - self._progress <= limit and (since is None or now - since <= limit)

    def request_stop(self) -> None:
        """Begin a graceful shutdown (SIGTERM, SIGINT); a second request stops at once.

        The graceful shutdown takes at most `shutdown_grace_s`, even with a frozen broker;
        alerts not published by then are counted and stay in the outbox.
        """
        if self._stop.is_set():
            self._force_stop("second_signal")
            return
        grace = self.settings.shutdown_grace_s
        self._stop_deadline = time.monotonic() + grace
        self._stop.set()
        self.notifier.notify("STOPPING=1")
        if self._loop is not None:
            # The last resort: whatever still waits (a connect to a frozen broker, a
            # DISCONNECT never answered) is cancelled when the grace period is over.
            self._loop.call_later(grace, self._force_stop, "grace_period_over")

    def _force_stop(self, why: str) -> None:
        task = self._intake_task
        if task is None or task.done():
            return
        log.warning("stop_forced", why=why, alerts_pending=len(self.alerts))
        task.cancel()

    def grace_left(self, reserve_s: float = 0.0) -> float:
        """Seconds of the grace period left, less `reserve_s` kept for what comes after."""
        if self._stop_deadline is None:
            return self.settings.shutdown_grace_s
        return max(0.0, self._stop_deadline - time.monotonic() - reserve_s)

    async def serve(self) -> int:
        """Run until stopped; return the exit code (0 after a graceful shutdown)."""
        loop = self._loop = asyncio.get_running_loop()
        if self.settings.shard.enabled:
            structlog.contextvars.bind_contextvars(shard=self.settings.shard.label())
        for sig in (signal.SIGTERM, signal.SIGINT):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, self.request_stop)
        alerts = self.settings.alerts
        if alerts.outbox:
            try:
                restored = self.alerts.attach(Outbox(alerts.outbox_path))
            except OutboxError as exc:
                # Monitoring matters more than durability: serve, and say what is at risk.
                log.error(
                    "outbox_unavailable",
                    error=str(exc),
                    effect="alerts not delivered before a restart will be lost",
                )
            else:
                if restored or len(self.alerts.ledger):
                    log.info(
                        "alerts_restored",
                        count=restored,
                        open=len(self.alerts.ledger),
                        outbox=str(alerts.outbox_path),
                    )
        state = self.settings.state
        snapshot = None
        if state.snapshot:  # before intake: a restored patient's next sample is scored
            snapshot = restore_on_start(
                state.snapshot_path, self.pipeline, state.snapshot_max_age_s
            )
        self.checkpoints.start(self.clock(), snapshot is not None)
        if snapshot is not None and snapshot.events:
            self._emit(list(snapshot.events))  # published once connected
        if self._recovery is None:  # a shard's replay rebuilds its state first
            self._end_orphans(self.clock())  # what the restored state does not hold
        self._progress = time.perf_counter()  # restoring the snapshot was progress
        self.http.start()
        self.metrics.model_info.labels(
            self.predictor.card.model_version, self.predictor.device
        ).set(1)
        log.info(
            "started",
            model_version=self.predictor.card.model_version,
            device=self.predictor.device,
            backend=self.predictor.backend,
            features=list(self.predictor.features),
            window=self.predictor.window,
            alarm_gains=self.pipeline.gains(),
            broker=self.transport.endpoint,
            metrics=f"http://{self.http.host}:{self.http.port}/metrics",
        )
        self.notifier.notify("READY=1")  # serving; the broker may still be connecting
        if self._stuck_exit is not None:  # for a supervisor that only restarts on exit
            self._stuck_exit.start()
        background = [
            asyncio.create_task(
                self.alerts.run(lambda: self._publisher, self._connected), name="publisher"
            ),
            asyncio.create_task(self._housekeeping(), name="housekeeping"),
            asyncio.create_task(self._loop_lag(), name="loop-lag"),
        ]
        for task in background:
            task.add_done_callback(self._background_ended)
        self._intake_task = asyncio.create_task(self.transport.run(self), name="intake")
        try:
            with serving_tuning(), contextlib.suppress(asyncio.CancelledError):
                await self._intake_task  # cancelled by a second stop request
        finally:
            if self._stuck_exit is not None:
                self._stuck_exit.stop()
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self.checkpoints.cancel()  # the final write below stays, whatever finishes last
            self.alerts.account_shutdown()
            if state.snapshot and self._stop.is_set():  # after the last batch was scored
                save_on_stop(state.snapshot_path, self.pipeline, written=self._snapshot_written)
            self.http.stop()
            self.notifier.close()
            self._executor.shutdown(wait=False)
            log.info("stopped", exit_code=1 if self._task_failed else 0)
        return 1 if self._task_failed else 0

    def _background_ended(self, task: asyncio.Task[None]) -> None:
        """A background task (the alert publisher, housekeeping, the loop-lag probe) never
        ends while the daemon serves. One that does leaves it half alive (no alert
        published, or no patient found silent) behind answering probes: log it, stop
        gracefully (the last batches, the outbox, the snapshot) and exit with code 1, so
        that the supervisor restarts it (systemd `Restart=on-failure`, Kubernetes,
        Compose `unless-stopped`)."""
        if task.cancelled():  # the shutdown's own cancel
            return
        error = task.exception()
        log.error(
            "task_failed",
            task=task.get_name(),
            error=repr(error) if error is not None else "ended",
            exc_info=error,
        )
        self._task_failed = True
        if not self._stop.is_set():
            self.request_stop()

    # -- the transport's shell (the engine's `Shell` port) ----------------------------------

    def stopping(self) -> bool:
        """A graceful stop was requested."""
        return self._stop.is_set()

    async def wait_stop(self) -> None:
        """Return once a graceful stop is requested."""
        await self._stop.wait()

    def note(self, event: str, warning: bool = False, **fields: object) -> None:
        """Log the transport's lifecycle event."""
        (log.warning if warning else log.info)(event, **fields)

    async def going_live(self, subscribe: Callable[[], Awaitable[None]]) -> None:
        """Subscribe; a shard's first connection recovers its windows around it.

        Recovery (`service.shard`): replay the stream, subscribe (live messages wait in the
        queue), replay what the stream got since, then go live; the queue's overlap with the
        catch-up ends as duplicate or late. Without the stream the shard starts empty.
        """
        recovery = None if self._recovered else self._recovery
        first = None
        if recovery is not None:
            self._recovering = True
            first = await recovery.recover(1, self.settings.nats.recovery_timeout_s)
        try:
            await subscribe()
        except BaseException:
            self._recovering = False  # not live: housekeeping goes on (signal lost, ...)
            raise
        if recovery is not None:
            if first is not None:
                # The server stores a message in the stream a moment after it routes it to
                # subscribers: let a message published just before the subscription took
                # effect reach the stream before the catch-up reads up to its end.
                await asyncio.sleep(_STREAM_SETTLE_S)
                await recovery.recover(first + 1, self.settings.nats.recovery_timeout_s)
            self._recovered = True  # once per process: later reconnects go live at once
            self._recovering = False

    def last_will(self) -> tuple[str, bytes] | None:
        """The system-wide state message saying monitoring is offline, for the broker to
        publish (retained) if this connection ends without a goodbye; None without state
        messages. Its time is the connection's: the daemon cannot know when it will end."""
        if not self.settings.alerts.state:
            return None
        return self.transport.state_address(None), self._offline_state(self.clock())

    def _offline_state(self, t: float) -> bytes:
        """The system-wide state message of a daemon that watches nobody (`monitor_offline`)."""
        offline = AlertEvent.technical(
            None, "monitor_offline", "raised", t=t, model_version=self.predictor.card.model_version
        )
        return OpenAlertsMessage(patient_id=None, open=[offline]).to_json()

    def connected(self, publisher: AlertPublisher) -> None:
        """Subscribed: live, and alerts go out through `publisher`."""
        self._publisher = publisher
        self.alerts.resync()  # the retained state messages, again on every connection
        self._connected.set()
        self.metrics.mqtt_connected.set(1)

    def disconnected(self) -> None:
        """The connection is gone: not ready, alerts held."""
        self._publisher = None
        self._connected.clear()
        self.metrics.mqtt_connected.set(0)

    def reconnecting(self) -> None:
        """A reconnect follows: counted."""
        self.metrics.mqtt_reconnects.inc()

    def refused(self, reason: str) -> None:
        """Count a unit the transport refused as a received unit with one outcome."""
        self.metrics.received.inc()
        if reason == "packet_too_large":
            # The connection is dropped with it (the transport logs it).
            self.metrics.dropped.labels(reason).inc()
            self.metrics.messages.labels("dropped").inc()
            return
        self.metrics.invalid.labels(reason).inc()
        self.metrics.messages.labels("invalid").inc()
        suppressed = self._limiter.allow(reason)  # a hostile broker may send many: no log storm
        if suppressed is not None:
            log.warning(
                "message_rejected",
                reason=reason,
                detail=_REFUSAL_DETAIL.get(reason, reason),
                suppressed_since_last=suppressed,
            )

    async def consume(self, link: Link) -> None:
        """Feed the engine from the queue in bursts until `link` is lost (then raise)."""
        queue = self._queue
        link.on_lost(queue.ready.set)
        while True:
            link.raise_if_lost()
            if not queue:
                queue.ready.clear()
                await queue.ready.wait()
                continue
            # Handle a burst, then yield: one task switch per burst instead of one per
            # message (PERFORMANCE.md), and a bounded stall for the other tasks.
            self._drain(limit=_DRAIN_MAX)
            await asyncio.sleep(0)

    def drain(self) -> None:
        """Ingest everything queued (a lost connection's last messages)."""
        self._drain(limit=None)

    async def finish(self) -> float:
        """Graceful stop, intake closed: score everything received, publish the alerts
        within the grace period; return the seconds left for the DISCONNECT."""
        self._drain(limit=None)
        await self.final_flush()
        if self.settings.alerts.state:  # nobody watches the patients from now on: say so
            self.alerts.going_offline(self._offline_state(self.clock()))
        # Keep a little of the grace period for the DISCONNECT (and the socket shutdown
        # after it when the broker does not answer).
        reserve = min(1.0, self.settings.shutdown_grace_s / 4)
        await self.alerts.wait_delivered(self.grace_left(reserve))
        return self.grace_left(reserve / 2)

    def _drain(self, limit: int | None) -> None:
        """Feed up to `limit` queued messages (all with None) to the engine, in order."""
        left = len(self._queue) if limit is None else limit
        while left > 0 and self._queue:
            messages = self._queue.take(min(left, _INGEST_CHUNK))
            left -= len(messages)
            keys, payloads = zip(*messages, strict=True)
            batch = IngressBatch(keys, payloads, [self.clock()] * len(payloads))
            events = self.scheduler.ingest(batch)
            if events:
                self._emit(events)
            if self._forward_done:
                # Score the finished forward and start the next one now, not after the
                # burst: the inference thread idles until then.
                self._complete_forward()
        self._start_forward()

    # -- inference -------------------------------------------------------------------------
    #
    # Forwards run on the one inference thread, at most `_IN_FLIGHT` queued there, and are
    # driven by callbacks on the event loop, not by a task: a batch starts after each intake
    # burst, when a forward ends (noticed between two messages of a burst) or when its oldest
    # job has waited `batch.max_wait_ms`. Batches are scored in the order they were taken.
    # Why: every hop through a task costs an event-loop turn, and under load each turn waits
    # behind an intake burst, while the inference thread sat idle (traced at 10k msg/s).

    def _start_forward(self) -> None:
        """Start forwards of due batches while fewer than `_IN_FLIGHT` are queued; arm the
        batch timer when the oldest job is not yet due."""
        if self._final:
            return
        now = self.clock()
        deadline = self.scheduler.start_due(now, _IN_FLIGHT)
        if deadline is not None and self._batch_timer is None and self._loop is not None:
            self._batch_timer = self._loop.call_later(deadline - now, self._on_batch_timer)

    def _on_batch_timer(self) -> None:
        self._batch_timer = None
        self._start_forward()

    def _on_forward_done(self, _future: Future[np.ndarray[Any, Any]]) -> None:
        # On the inference thread: flag it for an intake burst running, wake an idle loop.
        self._forward_done = True
        if self._loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop has closed
                self._loop.call_soon_threadsafe(self._complete_forward)

    def _complete_forward(self) -> None:
        """Score the forwards that ended, in order, and start the next ones."""
        self._forward_done = False
        events = self.scheduler.score_done()
        if events:
            self._emit(events)
        self._start_forward()

    def forward_failed(self, jobs: Sequence[Job], error: BaseException) -> None:
        """A forward raised (the engine's `Report`): logged; its jobs end as `failed`."""
        log.error("inference_failed", error=repr(error), jobs_lost=len(jobs))

    def forward_scored(
        self, jobs: Sequence[Job], predictions: np.ndarray[Any, Any], seconds: float
    ) -> None:
        """A forward is scored (the engine's `Report`): its latency."""
        self.metrics.inference_latency.observe(seconds)

    def _predict(self, windows: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
        t0 = time.perf_counter()
        out = self.predictor.predict(windows)
        if self._inference_hook is not None:
            self._inference_hook(time.perf_counter() - t0)
        return out

    async def final_flush(self) -> None:
        """Score everything pending: the forwards in flight, then the rest in batches."""
        self._final = True
        if self._batch_timer is not None:
            self._batch_timer.cancel()
            self._batch_timer = None
        scheduler = self.scheduler
        while scheduler.in_flight or self.pipeline.pending:
            if self.pipeline.pending and scheduler.in_flight < _IN_FLIGHT:
                scheduler.submit()
                continue
            future = scheduler.oldest()
            assert future is not None  # in flight
            try:
                with contextlib.suppress(Exception):  # scored as failed (logged, counted)
                    await asyncio.shield(asyncio.wrap_future(future))
            except asyncio.CancelledError:
                # Cancelled during the final flush: finish the batch in flight so its jobs
                # are scored (counted), then go on cancelling.
                with contextlib.suppress(Exception):
                    await asyncio.wrap_future(future)
                self._emit(scheduler.score_done())
                raise
            self._emit(scheduler.score_done())

    # -- alerts ----------------------------------------------------------------------------

    def _emit(self, events: list[AlertEvent]) -> None:
        for event in events:
            log.info(
                "alert",
                id=event.id,
                kind=event.kind,
                patient=self.pseudonym(event.patient_id),
                vital=event.vital,
                state=event.state,
                severity=event.severity,
                reason=event.reason,
                z=None if event.z is None else round(event.z, 2),
                seq=event.seq,
            )
        self.alerts.publish(events)

    # -- housekeeping ----------------------------------------------------------------------

    async def _housekeeping(self) -> None:
        """The engine's `Ticks` on the daemon's clock (the wall clock, never going back):
        the passes due since the last call."""
        ticks, clock = self.ticks, self.clock
        ticks.advance(clock())  # the origin: pass k is due k intervals from now
        behind = 0.0
        while True:
            await asyncio.sleep(self.settings.housekeeping_interval_s)
            self._check_forward()
            if self.is_alive():  # else systemd's watchdog (WatchdogSec=) restarts it
                self.notifier.notify("WATCHDOG=1")
            if self._recovering:
                # The windows are on the stream's clock until the replay ends: the wall
                # clock's 'signal lost' would be about the replay, not the patients (the
                # passes due meanwhile run, on their own times, at the first call after).
                continue
            now = clock()
            for before, step in clock.take_jumps():
                # A suspend or a step ahead: not the patients' silence (`service.clock`).
                log.warning("host_clock_jumped_forward", step_s=round(step, 3))
                self.pipeline.shift_seen(before, step)
            events = ticks.advance(now)
            if clock.behind_s > behind + 1.0:
                # Receipts, batches and housekeeping go on at their pace; sample times are
                # compared with this clock, so devices now look behind by as much.
                log.warning("host_clock_stepped_back", step_s=round(clock.behind_s - behind, 3))
            behind = clock.behind_s
            if events:
                self._emit(events)
            if self._recovery is None or self._recovered:  # a shard: its replay rebuilt it
                self._end_orphans(now)
            if self.checkpoints.due(now):
                self.checkpoints.write(self.pipeline, now)

    def _end_orphans(self, now: float) -> None:
        """End (`expired`) every open alert the engine does not hold: after a cold start,
        a refused snapshot or another model's, or a patient evicted with a physiological
        episode open, nothing would ever clear it at its consumers (`service.ledger`)."""
        orphans = self.alerts.ledger.orphans(
            self.pipeline.holds, now, self.predictor.card.model_version
        )
        if orphans:
            log.warning("alerts_expired", count=len(orphans), why="not_held")
            self._emit(orphans)

    def _snapshot_written(self, result: str) -> None:
        self.metrics.snapshot_writes.labels(result).inc()

    def _check_forward(self) -> None:
        """Note the pass (liveness) and raise or clear `inference_stalled` by how long the
        oldest forward in flight has been running."""
        now = self._progress = time.perf_counter()
        since = self._forward_since = self.scheduler.oldest_started()
        running = 0.0 if since is None else now - since
        stalled = running > self.settings.model.stall_after_s
        if stalled == self.pipeline.stalled:
            return
        if stalled:
            log.error(
                "inference_stalled", running_s=round(running, 1), pending=self.pipeline.pending
            )
        else:
            log.info("inference_resumed")
        self._emit(self.pipeline.inference_stalled(stalled, self.clock()))

    async def _loop_lag(self) -> None:
        interval = 0.1
        while True:
            t0 = time.perf_counter()
            await asyncio.sleep(interval)
            self.metrics.loop_lag.observe(max(0.0, time.perf_counter() - t0 - interval))

    def _log_rejection(self, rejection: Rejection) -> None:
        suppressed = self._limiter.allow(rejection.reason)
        if suppressed is not None:
            log.warning(
                "message_rejected",
                reason=rejection.reason,
                detail=rejection.detail,
                patient=self.pseudonym(rejection.patient_id),
                suppressed_since_last=suppressed,
            )


def one_inference_thread() -> None:
    """Executor initializer: one OpenMP thread for torch in the inference thread."""
    # torch.set_num_threads on the main thread does not hold in the executor (PERFORMANCE.md).
    import torch

    torch.set_num_threads(1)
