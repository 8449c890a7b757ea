"""One module per `monitor` subcommand, each exposing a click command named `command`."""
