"""One module per `monitor` subcommand, each exposing a click command named `command`.

`signals` is no subcommand: it holds the ``--signal`` option that several share.
"""
