"""The ``coolmix`` command line: one thin module per subcommand, registered in `COMMANDS`.

Protocol (checked by ``tests/cli``): a command module exposes

- ``HELP: str`` — one line, shown in ``coolmix --help``;
- ``add_arguments(parser)`` — adds its arguments to an ``argparse`` subparser;
- ``run(args) -> int`` — does the work and returns the exit status.

A module must not import torch (or anything slow) at import time; import it inside ``run``.
Problems with the user's input are raised as `coolmix.ConfigError`; the entry point prints them
on one line and exits 2.
"""
