"""The ``--signal`` option shared by `monitor import` and `monitor train`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from monitor.core.vitals import Registry, parse_signal

_F = TypeVar("_F", bound=Callable[..., Any])


def signal_option(command: _F) -> _F:
    """Add a repeatable ``--signal NAME:UNIT:LOW:HIGH[:PERIOD_S]`` option (`signals` tuple)."""
    return click.option(
        "--signal",
        "signals",
        multiple=True,
        metavar="NAME:UNIT:LOW:HIGH[:PERIOD_S]",
        help="Register a signal beside the built-in vitals (repeat), e.g. "
        "ecg_mv:mV:-5:5:0.00278: values outside [LOW, HIGH] are artifacts. A model trained "
        "on it lists it in its card.",
    )(command)


def registry_of(specs: tuple[str, ...]) -> Registry:
    """The built-in vitals plus the ``--signal`` options.

    Raises:
        click.BadParameter: A malformed option, or a name given twice differently.
    """
    try:
        return Registry(parse_signal(spec) for spec in specs)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--signal") from None
