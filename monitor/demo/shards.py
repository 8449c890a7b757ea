"""Wiring of `monitor demo --shards N`: a spawned nats-server -> N shards -> alert feed ->
simulator -> live summary with each shard's share.

As in the plain demo (runner.py) everything but nats-server runs in this process on one event
loop: the N shards are `Daemon`s with `shard.index` K of `shard.count` N, each with its own
metrics registry and /metrics port, subscribed to their partitions on the server's MQTT
listener; the simulator publishes plain `vitals/<id>`, which the server's mapping turns into
`vitals/<partition>/<id>`. Stop order: simulator, shards (they drain), feed, nats-server.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time

from prometheus_client import disable_created_metrics

from monitor.demo.broker import port_or_free
from monitor.demo.feed import AlertFeed
from monitor.demo.nats import SpawnedNats
from monitor.demo.runner import (
    DemoOptions,
    announce,
    say_how_it_ended,
    wait_connected,
    wait_flag,
)
from monitor.demo.simulation import Simulation
from monitor.demo.stats import Window, combine, read
from monitor.demo.summary import Display, legend
from monitor.model.predictor import Predictor
from monitor.model.store import load_model
from monitor.service.app import Daemon
from monitor.service.logs import configure_logging
from monitor.service.main import compose
from monitor.settings import LogSettings, Settings, load_settings

_HOST = "127.0.0.1"
#: P: partitions of the spawned server's mapping (the shards' default `shard.partitions`).
PARTITIONS = 64


def shard_settings(nats: SpawnedNats, index: int, count: int, metrics_port: int) -> Settings:
    """Shard `index` of `count` on the spawned server (MONITOR_* variables apply beneath)."""
    return load_settings(
        broker={"url": nats.mqtt_url},
        metrics={"host": _HOST, "port": metrics_port},
        log={"level": "warning", "format": "console"},
        shard={"index": index, "count": count, "partitions": nats.partitions},
        nats={"url": nats.url},
        # One sitting, as the plain demo: no outbox, no snapshot (runner.demo_settings).
        alerts={"outbox": False},
        state={"snapshot": False},
    )


async def run_shards_demo(
    options: DemoOptions, count: int, display: Display, started: float | None = None
) -> int:
    """Run the demo with `count` shards until Ctrl-C, SIGTERM or `duration_s`; return the
    exit code (0).

    Raises:
        NatsMissingError: nats-server is not on PATH.
        MonitorError: nats-server failed to start.
        BrokerError: Its MQTT listener cannot be reached.
    """
    started = time.monotonic() if started is None else started
    sim_started = started
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    nats = SpawnedNats(PARTITIONS, _HOST)
    held: dict[str, list[str]] = {}
    try:
        await nats.start()
        configure_logging(LogSettings(level="warning", format="console"))
        disable_created_metrics()  # type: ignore[no-untyped-call]
        model = load_model(options.model)
        daemons: list[Daemon] = []
        for k in range(count):
            # Shard K on --metrics-port + K; 0 (or past the last port): any free one.
            wanted = options.metrics_port + k if options.metrics_port else 0
            port = port_or_free(_HOST, wanted if wanted <= 65535 else 0)
            settings = shard_settings(nats, k, count, port)
            predictor = Predictor(model, settings.model.device, settings.model.backend)
            daemons.append(compose(settings, predictor))
        serving = [asyncio.create_task(d.serve(), name=f"shard-{k}") for k, d in enumerate(daemons)]
        # Each serve() installs SIGINT/SIGTERM handlers before its first await; take them over
        # so a signal stops the simulator before the shards.
        await asyncio.sleep(0)
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        feed = AlertFeed(daemons[0].settings.broker, daemons[0].settings.alerts.topic_prefix)
        feeding = asyncio.create_task(feed.run(), name="alert-feed")
        simulation = Simulation(daemons[0].settings.broker, options.simulation)
        codes: list[int] = []
        try:
            await wait_connected(daemons, feed, [*serving, feeding], 60.0, "a shard")
            await asyncio.to_thread(simulation.start)
            sim_started = time.monotonic()
            o = options.simulation
            display.header = [
                f"vitals-monitor demo: {o.patients} patients on {count} shards, scenario "
                f"{o.scenario}, {o.speed:g}x real time",
                f"nats     {nats.url} (spawned nats-server, MQTT listener {nats.mqtt_url}, "
                f"{PARTITIONS} partitions)",
                *(
                    f"shard {d.settings.shard.label()}/{count} metrics "
                    f"http://{d.http.host}:{d.http.port}/metrics"
                    for d in daemons
                ),
                f"model    {model.card.model_version[:12]} ({options.model})",
            ]
            announce(display, legend(model.card.window), options.tty, sim_started - started)
            await _refresh(options, display, daemons, feed, simulation, stop, started, held)
        finally:
            await asyncio.to_thread(simulation.stop)
            for d in daemons:
                d.request_stop()
            try:
                codes = list(await asyncio.gather(*serving))
            finally:
                feeding.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await feeding
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
        await asyncio.to_thread(nats.stop)
    for label, ids in held.items():
        display.say(f"shard {label} held {len(ids)} patients: {' '.join(sorted(ids))}")
    if not say_how_it_ended(display, feed, simulation, sim_started, started):
        return 1
    return max(codes, default=0)


async def _refresh(
    options: DemoOptions,
    display: Display,
    daemons: list[Daemon],
    feed: AlertFeed,
    simulation: Simulation,
    stop: asyncio.Event,
    started: float,
    held: dict[str, list[str]],
) -> None:
    """Refresh the summary every `refresh_s` until the simulator ends, a signal or the end;
    keep in `held` the patients each shard holds at the latest refresh."""
    total = Window()
    windows = [Window() for _ in daemons]
    shown = 0
    end = None if options.duration_s is None else started + options.duration_s
    count = len(daemons)
    while True:
        now = time.monotonic()
        readings = [read(d.metrics, now) for d in daemons]
        shards = [
            (f"{d.settings.shard.label()}/{count}", w.add(r))
            for d, w, r in zip(daemons, windows, readings, strict=True)
        ]
        for (label, _), d in zip(shards, daemons, strict=True):
            held[label] = d.pipeline.windows.patients()
        new = feed.since(shown)
        shown = feed.received
        display.show(
            now - started,
            total.add(combine(readings)),
            list(feed.recent),
            new,
            started,
            shards,
            open_now=feed.open_now(),
        )
        if not simulation.running:
            return
        wait = options.refresh_s if end is None else min(options.refresh_s, end - now)
        if wait <= 0 or await wait_flag(stop, wait):
            return
