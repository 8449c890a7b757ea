"""`monitor demo`: the whole system in one command (broker, simulator, daemon, summary)."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click


@click.command("demo")
@click.option(
    "--broker",
    "broker_url",
    default=None,
    help="Use this broker (mqtt://host:port) instead of starting an embedded one.",
)
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=1883,
    show_default=True,
    help="Port of the embedded broker on 127.0.0.1 (a free one if taken).",
)
@click.option(
    "--metrics-port",
    type=click.IntRange(0, 65535),
    default=9108,
    show_default=True,
    help="Port of /metrics on 127.0.0.1 (a free one if taken).",
)
@click.option(
    "--model",
    type=click.Path(file_okay=False, exists=True, path_type=Path),
    default=None,
    help="Model directory; default: the shipped model, else one trained on the spot.",
)
@click.option("--patients", type=click.IntRange(min=1), default=20, show_default=True)
@click.option(
    "--speed",
    type=click.FloatRange(min=1.0),
    default=10.0,
    show_default=True,
    help="Simulated seconds per real second.",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--tty/--no-tty",
    default=None,
    help="Redraw the summary in place (default: when standard output is a terminal).",
)
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the simulator.")
@click.option(
    "--shards",
    type=click.IntRange(min=2),
    default=None,
    help="Run N shards sharing the patients on a spawned nats-server (needs nats-server on "
    "PATH; N divides the 64 partitions). Shard K serves /metrics on --metrics-port + K.",
)
def command(
    broker_url: str | None,
    port: int,
    metrics_port: int,
    model: Path | None,
    patients: int,
    speed: float,
    duration: float | None,
    tty: bool | None,
    seed: int,
    shards: int | None,
) -> None:
    """Show the whole system: broker, simulated patients, the daemon and its alerts, live.

    Starts an embedded MQTT broker (unless --broker), the daemon with the shipped model (or a
    small one trained on the spot), and the simulator with the `mixed` scenario at SPEED x
    real time; serves /metrics; prints patients, messages/s, latency and recent alerts every
    second until Ctrl-C or SIGTERM (exit 0).

    With --shards N: a nats-server spawned on free ports (JetStream, its MQTT listener and the
    partition mapping; removed at stop) instead of the broker, and N shards; the summary
    shows each shard's patients, messages/s and alerts (docs/demo.md, "Two shards").
    """
    if shards is not None:
        _check_shards(shards, broker_url)
    started = time.monotonic()
    # One OpenMP thread, set before torch is imported (PERFORMANCE.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import asyncio

    from monitor.demo.model import resolve_model
    from monitor.demo.runner import DemoOptions, run_demo
    from monitor.demo.shards import run_shards_demo
    from monitor.demo.simulation import SimulationOptions
    from monitor.demo.summary import Display
    from monitor.errors import MonitorError
    from monitor.transports.mqtt.errors import BrokerError

    display = Display(sys.stdout.isatty() if tty is None else tty, [])
    try:
        path = resolve_model(model, display.say)
    except KeyboardInterrupt:
        sys.exit(130)
    options = DemoOptions(
        model=path,
        broker_url=broker_url,
        port=port,
        metrics_port=metrics_port,
        duration_s=duration,
        tty=display.tty,
        simulation=SimulationOptions(patients=patients, speed=speed, seed=seed),
    )
    try:
        if shards is None:
            code = asyncio.run(run_demo(options, display, started))
        else:
            code = asyncio.run(run_shards_demo(options, shards, display, started))
    except (BrokerError, MonitorError) as exc:
        click.echo(f"monitor demo: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)


def _check_shards(count: int, broker_url: str | None) -> None:
    """Refuse (exit 2, one line) what --shards cannot run, before anything starts."""
    import shutil

    from monitor.demo.nats import MISSING
    from monitor.demo.shards import PARTITIONS

    if broker_url is not None:
        raise click.UsageError("--shards spawns its own nats-server: leave out --broker")
    if PARTITIONS % count:
        raise click.BadParameter(
            f"{count} does not divide the {PARTITIONS} partitions", param_hint="--shards"
        )
    if shutil.which("nats-server") is None:
        click.echo(MISSING, err=True)
        sys.exit(2)
