"""The `monitor` command line: subcommands only, no logic.

Each subcommand lives in its own module under `monitor.commands` and is imported only when
it runs, so `monitor --help` does not pay for importing torch.
"""

from __future__ import annotations

import importlib
import importlib.util

import click

#: Subcommand name -> module under `monitor.commands` defining a click command `command`.
COMMANDS: dict[str, str] = {
    "train": "train",
    "simulate": "simulate",
    "run": "run",
    "record": "record",
    "replay": "replay",
    "import": "import_",
    "evaluate": "evaluate",
    "demo": "demo",
    "schema": "schema",
    "docs": "docs",
    "bench": "bench",
}


def _available() -> dict[str, str]:
    found: dict[str, str] = {}
    for name, module in COMMANDS.items():
        if importlib.util.find_spec(f"monitor.commands.{module}") is not None:
            found[name] = module
    return found


class LazyGroup(click.Group):
    """A group that imports a subcommand's module only when that subcommand is used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(_available())

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        module = _available().get(cmd_name)
        if module is None:
            return None
        command = importlib.import_module(f"monitor.commands.{module}").command
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="vitals-monitor")
def main() -> None:
    """vitals-monitor: real-time monitoring of patient vital signs with a MedicalLSTM."""


if __name__ == "__main__":
    main()
