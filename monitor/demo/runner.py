"""Wiring of `monitor demo`: broker -> daemon -> alert feed -> simulator -> live summary.

Everything runs in one process on one event loop (the simulator publishes from a thread), so
Ctrl-C or SIGTERM stops it all in order: simulator first (no new input), then the daemon
(scores what it received and publishes pending alerts), the feed, and the broker last.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from prometheus_client import disable_created_metrics

from monitor.demo.broker import EmbeddedBroker, port_or_free
from monitor.demo.feed import AlertFeed
from monitor.demo.simulation import Simulation, SimulationOptions
from monitor.demo.stats import Window, read
from monitor.demo.summary import Display, legend
from monitor.model.predictor import Predictor
from monitor.model.store import load_model
from monitor.service.app import Daemon
from monitor.service.logs import configure_logging
from monitor.service.main import compose
from monitor.settings import LogSettings, Settings, load_settings

_HOST = "127.0.0.1"


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What `monitor demo` runs.

    Attributes:
        model: Model directory to serve.
        broker_url: An external broker; None starts the embedded one.
        port: Port of the embedded broker (taken: a free one).
        metrics_port: Port of /metrics (taken: a free one).
        duration_s: Stop after this many seconds; None runs until Ctrl-C or SIGTERM.
        tty: Redraw the summary in place instead of printing a line per refresh.
        refresh_s: Seconds between refreshes.
        simulation: Patients, speed and event timing of the simulator.
    """

    model: Path
    broker_url: str | None = None
    port: int = 1883
    metrics_port: int = 9108
    duration_s: float | None = None
    tty: bool = True
    refresh_s: float = 1.0
    simulation: SimulationOptions = field(default_factory=SimulationOptions)


def demo_settings(broker_url: str, metrics_port: int) -> Settings:
    """The daemon's settings for the demo (MONITOR_* variables still apply beneath these).

    The ingest limits are the defaults: the simulator runs 10 times faster than real time
    but stamps each sample with its wall-clock send time (docs/time.md), so no sample lies
    ahead of the daemon's clock.
    """
    return load_settings(
        broker={"url": broker_url},
        metrics={"host": _HOST, "port": metrics_port},
        log={"level": "warning", "format": "console"},
        # A demo is one sitting: its alerts must not reach the next demo after a restart.
        alerts={"outbox": False},
        # Nor its patients' state (a restart starts a new demo).
        state={"snapshot": False},
    )


async def wait_flag(flag: asyncio.Event, seconds: float) -> bool:
    """Wait up to `seconds` for `flag`; return whether it is set."""
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(flag.wait(), seconds)
    return flag.is_set()


async def run_demo(options: DemoOptions, display: Display, started: float | None = None) -> int:
    """Run the demo until Ctrl-C, SIGTERM or `duration_s`; return the exit code (0).

    Args:
        options: What to run.
        display: Where the summary goes.
        started: Monotonic time the command started (before any model training), from
            which the duration and the reported times count; default: now.

    Raises:
        BrokerError: The broker cannot be reached (an external one, or the embedded one
            failed to start).
    """
    started = time.monotonic() if started is None else started
    sim_started = started
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    broker: EmbeddedBroker | None = None
    url = options.broker_url
    if url is None:
        broker = EmbeddedBroker(_HOST, port_or_free(_HOST, options.port))
        await broker.start()
        url = broker.url
    try:
        settings = demo_settings(url, port_or_free(_HOST, options.metrics_port))
        configure_logging(LogSettings(level="warning", format="console"))
        # `_created` series double the exposition and no dashboard uses them.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        predictor = Predictor(
            load_model(options.model), settings.model.device, settings.model.backend
        )
        daemon = compose(settings, predictor)
        serving = asyncio.create_task(daemon.serve(), name="daemon")
        # serve() installs its own SIGINT/SIGTERM handlers before its first await; take them
        # over so a signal stops the simulator before the daemon, not the daemon alone.
        await asyncio.sleep(0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        feed = AlertFeed(settings.broker, settings.alerts.topic_prefix)
        feeding = asyncio.create_task(feed.run(), name="alert-feed")
        simulation = Simulation(settings.broker, options.simulation)
        try:
            await wait_connected([daemon], feed, (serving, feeding), 30.0, "the daemon")
            await asyncio.to_thread(simulation.start)
            sim_started = time.monotonic()
            o = options.simulation
            display.header = [
                f"vitals-monitor demo: {o.patients} patients, scenario {o.scenario}, "
                f"{o.speed:g}x real time",
                f"broker   {url} ({'embedded amqtt, ' if broker else ''}MQTT {feed.protocol})",
                f"metrics  http://{daemon.http.host}:{daemon.http.port}/metrics",
                f"model    {predictor.card.model_version[:12]} ({options.model}) "
                f"on {predictor.device}",
            ]
            announce(display, legend(predictor.card.window), options.tty, sim_started - started)
            await _refresh_loop(options, display, daemon, feed, simulation, stop, started)
        finally:
            # Input first, then the daemon (it drains), then the consumer of its alerts.
            await asyncio.to_thread(simulation.stop)
            daemon.request_stop()
            try:
                code = await serving
            finally:
                feeding.cancel()
                # The feed may have ended with a broker error already; shutdown goes on.
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeding
    finally:
        if broker is not None:
            await broker.stop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    if not say_how_it_ended(display, feed, simulation, sim_started, started):
        return 1
    return code


def announce(display: Display, lines: list[str], tty: bool, ready_s: float) -> None:
    """Set the legend under the header; without a terminal, print both and when the
    simulator started (a terminal shows them with the live table)."""
    display.legend = lines
    if not tty:
        for line in [*display.header, *display.legend]:
            display.say(line)
        display.say(f"ready after {ready_s:.1f}s; simulator started")


def say_how_it_ended(
    display: Display, feed: AlertFeed, simulation: Simulation, sim_started: float, started: float
) -> bool:
    """Print when the first alert came and how the demo ended; False if the simulator failed."""
    if feed.first_at is not None:
        display.say(
            f"first alert {feed.first_at - sim_started:.1f}s after the simulator started "
            f"({feed.first_at - started:.1f}s after the demo started); {feed.breakdown()}"
        )
    if simulation.error is not None:
        display.say(f"simulator failed: {simulation.error}")
        return False
    display.say("stopped cleanly")
    return True


async def wait_connected(
    daemons: Sequence[Daemon],
    feed: AlertFeed,
    tasks: Sequence[asyncio.Task[int] | asyncio.Task[None]],
    timeout_s: float,
    what: str,
) -> None:
    """Wait until every daemon is ready and the feed subscribed, so no sample or alert is
    missed; a task that ends first re-raises why.

    Raises:
        TimeoutError: Not connected within `timeout_s` (`what` names the daemons).
    """
    deadline = time.monotonic() + timeout_s
    while not (all(d.is_ready() for d in daemons) and feed.subscribed.is_set()):
        for task in tasks:
            if task.done():
                task.result()  # re-raises why it ended
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} or the alert feed did not connect within {timeout_s:g} s")
        await asyncio.sleep(0.05)


async def _refresh_loop(
    options: DemoOptions,
    display: Display,
    daemon: Daemon,
    feed: AlertFeed,
    simulation: Simulation,
    stop: asyncio.Event,
    started: float,
) -> None:
    window = Window()
    shown = 0
    end = None if options.duration_s is None else started + options.duration_s
    while True:
        now = time.monotonic()
        figures = window.add(read(daemon.metrics, now))
        new = feed.since(shown)
        shown = feed.received
        display.show(
            now - started, figures, list(feed.recent), new, started, open_now=feed.open_now()
        )
        if not simulation.running:
            return
        wait = options.refresh_s if end is None else min(options.refresh_s, end - now)
        if wait <= 0 or await wait_flag(stop, wait):
            return
