"""`monitor record`: subscribe to a broker and append every message to a recording file."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

F = TypeVar("F", bound=Callable[..., Any])


def broker_options(func: F) -> F:
    """Add the broker connection options shared by `record` and `replay`."""
    options = [
        click.option(
            "--broker",
            "broker",
            default="mqtt://127.0.0.1:1883",
            show_default=True,
            help="Broker URL: mqtt://[user:pass@]host:port or mqtts://... (TLS).",
        ),
        click.option("--username", default=None, help="User name (overrides the URL's)."),
        click.option(
            "--password",
            default=None,
            envvar="MONITOR_BROKER_PASSWORD",
            help="Password (or MONITOR_BROKER_PASSWORD).",
        ),
        click.option(
            "--ca-file",
            type=click.Path(exists=True, dir_okay=False, path_type=Path),
            default=None,
            help="CA bundle that signs the broker's certificate.",
        ),
        click.option("--client-id", default=None, help="MQTT client id (random by default)."),
        click.option(
            "--protocol",
            type=click.Choice(["auto", "5", "3.1.1"]),
            default="auto",
            show_default=True,
            help="MQTT protocol version.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def broker_config(options: dict[str, Any]) -> Any:
    """Build a `BrokerConfig` from the `broker_options` values (a clear error when invalid)."""
    from pydantic import ValidationError

    from monitor.transports.mqtt.config import BrokerConfig

    fields = {
        "url": options["broker"],
        **{
            k: options[k]
            for k in ("username", "password", "ca_file", "client_id", "protocol")
            if options[k]
        },
    }
    try:
        return BrokerConfig(**fields)
    except ValidationError as exc:
        raise click.BadParameter(str(exc.errors()[0]["msg"]), param_hint="--broker") from None


async def _run(options: dict[str, Any]) -> int:
    from monitor.replay.recorder import record

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await record(
        broker_config(options),
        options["out"],
        topics=options["topic"] or ("vitals/+",),
        qos=options["qos"],
        duration=options["duration"],
        stop=stop,
    )


@click.command("record")
@click.option(
    "--out",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="Recording file (JSON Lines; gzip when it ends in .gz).",
)
@broker_options
@click.option("--topic", multiple=True, help="Topic filter (repeat; default vitals/+).")
@click.option("--qos", type=click.IntRange(0, 2), default=1, show_default=True)
@click.option(
    "--duration",
    type=click.FloatRange(min=0, min_open=True),
    default=None,
    help="Stop after this many seconds (default: until SIGINT/SIGTERM).",
)
def command(**options: Any) -> None:
    """Record every message from the broker into a recording file until stopped."""
    from monitor.transports.mqtt.errors import BrokerError

    try:
        count = asyncio.run(_run(options))
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"recorded {count} messages to {options['out']}", err=True)
