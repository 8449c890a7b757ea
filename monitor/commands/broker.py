"""Broker options of `record`, `replay` and `simulate`: the flags, the environment, warnings.

Flags win, then the environment names `monitor run` reads (``MONITOR_BROKER__URL``,
``MONITOR_BROKER__USERNAME``, ``MONITOR_BROKER__PASSWORD``, ``MONITOR_BROKER__PASSWORD_FILE``,
``MONITOR_BROKER__CA_FILE``, ``MONITOR_BROKER__PROTOCOL``...), then the defaults. The client
id comes from ``--client-id`` only: the daemon's fixed ``MONITOR_BROKER__CLIENT_ID`` in a
second client would make the broker disconnect one of the two.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from monitor.settings import BrokerSettings

F = TypeVar("F", bound=Callable[..., Any])

_DEFAULT_URL = "mqtt://127.0.0.1:1883"


class BrokerSettingsError(click.ClickException):
    """Invalid broker settings: one line naming the setting (never a secret), exit code 2."""

    exit_code = 2


def broker_options(func: F) -> F:
    """Add the broker connection options shared by `record`, `replay` and `simulate`."""
    options = [
        click.option(
            "--broker",
            default=None,
            help=f"Broker URL: mqtt://host:port or mqtts://... (TLS); default "
            f"MONITOR_BROKER__URL, else {_DEFAULT_URL}.",
        ),
        click.option("--username", default=None, help="User name (overrides the URL's)."),
        click.option(
            "--password",
            default=None,
            help="Password; visible to other local users in ps: prefer --password-file or "
            "MONITOR_BROKER__PASSWORD_FILE / MONITOR_BROKER__PASSWORD.",
        ),
        click.option(
            "--password-file",
            type=click.Path(dir_okay=False, path_type=Path),
            default=None,
            help="File holding the broker password (a trailing newline is dropped).",
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
            default=None,
            help="MQTT protocol version (default auto: 5, then 3.1.1).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


def cli_secret_warning(command: str, url: str | None, password: str | None) -> str | None:
    """The warning line when a password was given on the command line, else None."""
    # "user:password@" before the host; by hand, since a password with '#', '/' or '?'
    # breaks the URL's parts (urlsplit then sees no password at all).
    userinfo = (url or "").partition("://")[2].rpartition("@")[0]
    if password is None and ":" not in userinfo:
        return None
    return (
        f"monitor {command}: warning: a broker password on the command line (--password or "
        "in the --broker URL) is visible to other local users in ps; use --password-file or "
        "MONITOR_BROKER__PASSWORD_FILE (or MONITOR_BROKER__PASSWORD) instead"
    )


def broker_config(command: str, options: dict[str, Any], legacy: tuple[str, ...]) -> BrokerSettings:
    """Build the broker settings from `broker_options` values and the environment.

    Prints one warning line on standard error for a password on the command line and for
    each deprecated environment variable set.

    Args:
        command: The command's name, for the messages.
        options: The click values of `broker_options`.
        legacy: Deprecated password variables this command used to read.

    Raises:
        BrokerSettingsError: A value is invalid.
    """
    from monitor.errors import SettingsError
    from monitor.settings import legacy_password, load_broker

    keys = {"broker": "url", "username": "username", "password": "password"}
    keys |= {"password_file": "password_file", "ca_file": "ca_file", "protocol": "protocol"}
    fields = {field: options[flag] for flag, field in keys.items() if options[flag] is not None}
    fields["client_id"] = options["client_id"]  # flag only, never the daemon's (module doc)
    warning = cli_secret_warning(command, options["broker"], options["password"])
    if warning is not None:
        click.echo(warning, err=True)
    password, notes = legacy_password(legacy)
    for note in notes:
        click.echo(f"monitor {command}: warning: {note}", err=True)
    if password is not None and not {"password", "password_file"} & fields.keys():
        fields["password"] = password
    try:
        return load_broker(**fields)
    except SettingsError as exc:
        raise BrokerSettingsError("invalid broker settings: " + "; ".join(exc.problems)) from None
