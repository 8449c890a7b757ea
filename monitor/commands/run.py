"""`monitor run`: the monitoring daemon."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import click

#: Deprecated: the environment variable of --password, before MONITOR_BROKER__PASSWORD.
_LEGACY_PASSWORD = ("MONITOR_BROKER_PASSWORD_FLAG",)


def _overrides(**flags: Any) -> dict[str, Any]:
    """Turn the CLI flags that were given into nested settings overrides."""
    out: dict[str, dict[str, Any]] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        section, _, key = dotted.partition("__")
        out.setdefault(section, {})[key] = value
    return out


def _shard(value: str | None) -> tuple[int, int] | None:
    """Parse ``K/N`` (shard K of N)."""
    if value is None:
        return None
    index, sep, count = value.partition("/")
    if not (sep and index.isdigit() and count.isdigit()):
        raise click.BadParameter(f"expected K/N such as 0/2, got {value!r}")
    return int(index), int(count)


@click.command("run")
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML settings file (sections as in docs/settings.md).",
)
@click.option("--broker", help="Broker URL: mqtt://host:port or mqtts://host:port.")
@click.option("--username", help="Broker user name (overrides the URL's).")
@click.option(
    "--password",
    help="Broker password; visible to other local users in ps: prefer --password-file or "
    "MONITOR_BROKER__PASSWORD_FILE / MONITOR_BROKER__PASSWORD.",
)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="File holding the broker password (a trailing newline is dropped).",
)
@click.option(
    "--ca-file",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="CA bundle that signs the broker's certificate (mqtts).",
)
@click.option("--client-id", help="Fixed MQTT client id (needed for a persistent session).")
@click.option(
    "--protocol",
    type=click.Choice(["auto", "5", "3.1.1"]),
    help="MQTT protocol version; auto tries 5 then 3.1.1.",
)
@click.option("--keepalive", type=int, help="MQTT keepalive, seconds.")
@click.option("--topic", "topics", multiple=True, help="Topic filter (repeatable); vitals/+.")
@click.option("--qos", type=click.IntRange(0, 2), help="Subscription QoS (default 1).")
@click.option(
    "--persistent-session/--clean-session",
    default=None,
    help="Keep the broker session across restarts (with a fixed --client-id).",
)
@click.option(
    "--model",
    type=click.Path(file_okay=False, path_type=Path),
    help="Model directory (model.safetensors + card.json); default: shipped model.",
)
@click.option("--device", help="auto (CUDA when available), cpu, cuda or cuda:N.")
@click.option("--metrics-host", help="Bind address of /metrics, /healthz, /readyz.")
@click.option("--metrics-port", type=int, help="Port of /metrics, /healthz, /readyz (9108).")
@click.option("--threshold", type=float, help="Raise threshold, |z| in sigma units (4).")
@click.option("--max-patients", type=int, help="Cap on patients held (10000).")
@click.option(
    "--shard",
    callback=lambda _ctx, _param, value: _shard(value),
    help="K/N: run as shard K of N (0-based), owning the partitions k with k mod N == K "
    "through the NATS MQTT listener (docs/scale-out.md); N divides shard.partitions (64).",
)
@click.option("--nats", "nats_url", help="NATS URL of the stream windows are recovered from.")
@click.option("--log-format", type=click.Choice(["auto", "json", "console"]))
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]))
def command(config_file: Path | None, **flags: Any) -> None:
    """Run the monitoring daemon: MQTT in, batched MedicalLSTM, alerts and metrics out.

    Settings come from CLI flags, then MONITOR_* environment variables (nested with __,
    e.g. MONITOR_BROKER__URL, MONITOR_DETECTOR__THRESHOLD), then --config FILE, then
    defaults; every setting is listed in docs/settings.md. Exit code 0 after SIGTERM or
    SIGINT (graceful: intake stops, the batch in flight finishes, pending alerts are
    published), 2 for invalid settings, an unusable model or device, or a metrics address
    that cannot be served (one line that says what to change).
    """
    # One OpenMP thread, set before torch is imported (PERFORMANCE.md).
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from monitor.commands.broker import cli_secret_warning
    from monitor.errors import MonitorError
    from monitor.service.main import run_daemon
    from monitor.settings import legacy_password, load_settings

    topics = flags.pop("topics")
    shard = flags.pop("shard")
    warning = cli_secret_warning("run", flags["broker"], flags["password"])
    if warning is not None:
        click.echo(warning, err=True)
    legacy, notes = legacy_password(_LEGACY_PASSWORD)
    for note in notes:
        click.echo(f"monitor run: warning: {note}", err=True)
    if legacy is not None and flags["password"] is None and flags["password_file"] is None:
        flags["password"] = legacy  # what the deprecated variable used to do: set --password
    mapping = {
        "broker": "broker__url",
        "username": "broker__username",
        "password": "broker__password",
        "password_file": "broker__password_file",
        "ca_file": "broker__ca_file",
        "client_id": "broker__client_id",
        "protocol": "broker__protocol",
        "keepalive": "broker__keepalive",
        "qos": "ingest__qos",
        "persistent_session": "ingest__persistent_session",
        "model": "model__path",
        "device": "model__device",
        "metrics_host": "metrics__host",
        "metrics_port": "metrics__port",
        "threshold": "detector__threshold",
        "max_patients": "window__max_patients",
        "log_format": "log__format",
        "log_level": "log__level",
        "nats_url": "nats__url",
    }
    overrides = _overrides(**{mapping[k]: v for k, v in flags.items()})
    if topics:
        overrides.setdefault("ingest", {})["topics"] = list(topics)
    if shard is not None:
        overrides.setdefault("shard", {}).update(index=shard[0], count=shard[1])
    try:
        settings = load_settings(config_file, **overrides)
        code = run_daemon(settings)
    except MonitorError as exc:
        click.echo(f"monitor run: {exc}", err=True)
        sys.exit(2)
    sys.exit(code)
