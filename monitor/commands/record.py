"""`monitor record`: subscribe to a broker and append every message to a recording file.

It ends with a summary line on standard error, ``recorded N messages to FILE; lost N of M
samples (x %) by seq gaps``, and exit code 3 when samples are missing (docs/recordings.md).
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path
from typing import Any

import click

from monitor.commands.broker import broker_config, broker_options

#: Deprecated name of MONITOR_BROKER__PASSWORD that `record` and `replay` read.
LEGACY_PASSWORD = ("MONITOR_BROKER_PASSWORD",)


#: Exit code of a recording that misses samples by their patients' `seq`.
EXIT_LOSS = 3


async def _run(broker: Any, options: dict[str, Any]) -> Any:
    from monitor.replay.recorder import record

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return await record(
        broker,
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
    """Record every message from the broker into a recording file until stopped.

    Each patient's `seq` shows the samples that did not arrive (lost, or never sent): the
    last line says how many, and the exit code is 3 when any are missing.
    """
    from monitor.transports.mqtt.errors import BrokerError

    broker = broker_config("record", options, LEGACY_PASSWORD)
    try:
        stats = asyncio.run(_run(broker, options))
    except BrokerError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(
        f"recorded {stats.recorded} messages to {options['out']}; {stats.loss.summary()}",
        err=True,
    )
    if stats.loss.missing:
        sys.exit(EXIT_LOSS)
