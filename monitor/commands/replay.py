"""`monitor replay`: republish a recording to a broker (live) or drive the pipeline (offline).

Live mode republishes with the original inter-arrival times divided by ``--speed``, each
message's sample times moved to the wall-clock time it is sent at (``--original-times`` keeps
the recorded ones; docs/time.md). Offline
mode (``--offline --model DIR --alerts OUT``) runs the daemon's own pipeline on a virtual clock;
it lives in `monitor.replay.offline`, imported only when used.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from collections.abc import Mapping
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import click

from monitor.commands.broker import broker_config, broker_options
from monitor.commands.record import LEGACY_PASSWORD
from monitor.errors import MonitorError


def _count(path: Path) -> int:
    """Count the records before sending any, refusing one whose topic cannot be published.

    Raises:
        DataError: A record cannot be read, or its topic is not an MQTT topic name (the broker
            would drop the connection, or the client raise, in the middle of the replay).
    """
    from monitor.errors import DataError
    from monitor.replay.recording import read_recording

    count = 0
    for count, record in enumerate(read_recording(path), start=1):
        problem = _unpublishable(record.topic)
        if problem is not None:
            raise DataError(
                f"{path}: record {count}",
                f"topic {record.topic[:80]!r} {problem}; fix or remove that record",
            )
    return count


def _unpublishable(topic: str) -> str | None:
    """Why `topic` is not a topic name a message can be published to (MQTT 4.7), or None."""
    if not topic:
        return "is empty"
    if "+" in topic or "#" in topic:
        return "has a wildcard (+ or #)"
    if "\0" in topic:
        return "has a NUL character"
    try:
        size = len(topic.encode("utf-8"))
    except UnicodeEncodeError:
        return "is not valid UTF-8"
    return "is longer than 65,535 bytes" if size > 65_535 else None


async def _live(path: Path, broker: Any, options: dict[str, Any]) -> int:
    from tqdm import tqdm

    from monitor.replay.player import play
    from monitor.replay.recording import Record, read_recording
    from monitor.replay.restamp import Restamper
    from monitor.transports.mqtt.client import connect

    speed = None if options["max_speed"] else options["speed"]
    restamp = None if options["original_times"] else Restamper(speed)
    total = _count(path)
    sent = 0
    async with connect(broker) as conn:

        async def publish(record: Record) -> None:
            payload = record.payload if restamp is None else restamp(record.payload, time.time())
            await conn.client.publish(record.topic, payload, qos=options["qos"])

        with tqdm(total=total, unit="msg", disable=options["quiet"]) as bar:

            def advance(_record: Record) -> None:
                bar.update()

            while True:
                sent += await play(read_recording(path), publish, speed=speed, on_sent=advance)
                if not options["loop"] or total == 0:
                    return sent
                bar.reset()


def _alert_dict(alert: Any) -> Mapping[str, Any]:
    if isinstance(alert, Mapping):
        return alert
    if is_dataclass(alert) and not isinstance(alert, type):
        return asdict(alert)
    if hasattr(alert, "model_dump"):
        return dict(alert.model_dump(mode="json"))
    raise TypeError(f"cannot serialise alert {alert!r}")


def _offline(path: Path, model: Path, alerts_out: Path, config_file: Path | None) -> None:
    """Score the recording offline; write its alerts; say what became of every sample."""
    from monitor.replay.offline import run_offline
    from monitor.replay.outcomes import format_gains, format_outcomes, unscored_warning
    from monitor.settings import load_settings

    settings = load_settings(config_file)
    result = run_offline(path, model, settings=settings, collect_predictions=False)
    alerts_out.parent.mkdir(parents=True, exist_ok=True)
    with alerts_out.open("w", encoding="utf-8") as f:
        for alert in result.alerts:
            f.write(json.dumps(_alert_dict(alert), separators=(",", ":")) + "\n")
    rate = result.samples_scored / result.elapsed_s if result.elapsed_s > 0 else float("nan")
    click.echo(
        f"{len(result.alerts)} alert events to {alerts_out}; {result.samples_scored} samples "
        f"scored in {result.elapsed_s:.2f} s ({rate:,.0f} samples/s)",
        err=True,
    )
    click.echo(format_gains(result.gains, result.rhythm), err=True)
    click.echo(format_outcomes(result.outcomes), err=True)
    warning = unscored_warning(result.outcomes)
    if warning is not None:
        click.echo(warning, err=True)


@click.command("replay")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@broker_options
@click.option(
    "--speed",
    type=click.FloatRange(min=0, min_open=True),
    default=1.0,
    show_default=True,
    help="Replay this many times faster than recorded.",
)
@click.option("--max-speed", is_flag=True, help="Publish as fast as possible (no sleeping).")
@click.option("--loop", is_flag=True, help="Start again at the end, until interrupted.")
@click.option(
    "--original-times",
    is_flag=True,
    help="Live mode: send the recorded sample times instead of the wall-clock send times "
    "(a default daemon refuses times older than a day or ahead of its clock; docs/time.md).",
)
@click.option("--qos", type=click.IntRange(0, 2), default=1, show_default=True)
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="TOML settings file, as for `monitor run` (offline mode: ingest, window, batch, "
    "detector sections).",
)
@click.option(
    "--offline",
    is_flag=True,
    help="No broker: drive the daemon's pipeline on a virtual clock (needs --alerts).",
)
@click.option(
    "--model",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=None,
    help="Model directory (offline mode); default: the shipped model (as `monitor run`).",
)
@click.option(
    "--alerts",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write alert events here as JSON Lines (offline mode).",
)
def command(file: Path, **options: Any) -> None:
    """Replay a recording: republish it to a broker, or score it offline with --offline."""
    if options["offline"]:
        if options["alerts"] is None:
            raise click.UsageError("--offline needs --alerts OUT")
        from monitor.model.store import default_model_path

        model = options["model"] or default_model_path()
        try:
            _offline(file, model, options["alerts"], options["config_file"])
        except MonitorError as exc:
            # One line, exit code 2: a bad recording, model or settings file (no traceback).
            click.echo(f"monitor replay: {exc}", err=True)
            sys.exit(2)
        return
    from monitor.transports.mqtt.errors import BrokerError

    broker = broker_config("replay", options, LEGACY_PASSWORD)
    try:
        sent = asyncio.run(_live(file, broker, options))
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    except MonitorError as exc:  # a bad recording: one line, exit code 2
        click.echo(f"monitor replay: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return
    click.echo(f"published {sent} messages", err=True)
