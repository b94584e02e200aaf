"""The ``coolmix`` command line: one thin module per subcommand, registered in `COMMANDS`.

Protocol (checked by ``tests/cli``): a command module exposes

- ``HELP: str`` — one line, shown in ``coolmix --help``;
- ``add_arguments(parser)`` — adds its arguments to an ``argparse`` subparser;
- ``run(args) -> int`` — does the work and returns the exit status.

A module must not import torch (or anything slow) at import time; import it inside ``run``.
Problems with the user's input are raised as `coolmix.ConfigError`; the entry point prints them
on one line and exits 2.
"""

from __future__ import annotations

import argparse

__all__ = ["add_set_option"]


def add_set_option(parser: argparse.ArgumentParser, example: str) -> None:
    """The shared repeatable ``--set KEY=VALUE`` override (collected in ``args.overrides``)."""
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help=f"override a config value, e.g. {example} (repeatable)",
    )
