"""The ``coolmix`` entry point: a dict of subcommand modules, and errors that fit on one line.

``coolmix plan CONFIG`` imports only ``coolmix.cli.plan``; ``coolmix --help`` imports every
registered module. Bad input of any kind prints exactly one line to stderr and exits 2, never a
traceback: a `ConfigError`, an argparse usage error, and the operating system refusing a path the
user gave (missing, a directory, no permission, read-only file system, disk full, name too long)
or a file that is not UTF-8 text. Anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import sys
from collections.abc import Sequence
from types import ModuleType
from typing import NoReturn

from coolmix import __version__
from coolmix.cli._log import show_warnings
from coolmix.errors import ConfigError

__all__ = ["COMMANDS", "build_parser", "load_command", "main"]

COMMANDS: dict[str, str] = {
    "plan": "coolmix.cli.plan",
    "train": "coolmix.cli.train",
    "reproduce": "coolmix.cli.reproduce",
    "report": "coolmix.cli.report",
    "ledger": "coolmix.cli.ledger",
    "ablation": "coolmix.cli.ablation",
    "rescore": "coolmix.cli.rescore",
}
"""Subcommand -> module exposing ``HELP``, ``add_arguments(parser)`` and ``run(args) -> int``."""

USER_PATH_ERRNOS = frozenset(
    {
        errno.ENOENT,
        errno.ENOTDIR,
        errno.EISDIR,
        errno.EEXIST,
        errno.EACCES,
        errno.EPERM,
        errno.EROFS,
        errno.ENOSPC,
        errno.EDQUOT,
        errno.ENAMETOOLONG,
        errno.ELOOP,
        errno.EFBIG,
        errno.ENOTEMPTY,
        errno.EXDEV,
    }
)
"""OSError numbers that mean "the file system refused the user's path", not a bug in coolmix."""


class UsageError(Exception):
    """An argparse usage error, raised instead of argparse's print-usage-and-exit."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{self.prog}: error: {message} (see '{self.prog} --help')")


def load_command(name: str) -> ModuleType:
    """The module of subcommand ``name`` (every entry of `COMMANDS` exists; a sync test checks)."""
    return importlib.import_module(COMMANDS[name])


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The argument parser with every existing subcommand (or just ``only``)."""
    parser = _Parser(
        prog="coolmix",
        description="Balanced training on heavily imbalanced multi-domain data (Li et al., NAACL 2025).",
    )
    parser.add_argument("--version", action="version", version=f"coolmix {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands")
    sub.required = True
    for name in COMMANDS:
        if only is not None and name != only:
            continue
        module = load_command(name)
        p = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``coolmix`` with ``argv`` (default: the process arguments); returns the exit status."""
    args = list(sys.argv[1:] if argv is None else argv)
    only = args[0] if args and args[0] in COMMANDS else None
    try:
        show_warnings()
        parsed = build_parser(only).parse_args(args)
        return int(parsed._run(parsed) or 0)
    except SystemExit as e:  # --help and --version exit 0 through argparse
        return e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    except UsageError as e:
        return _fail(str(e))
    except ConfigError as e:
        return _fail(f"coolmix: error: {e}")
    except UnicodeDecodeError as e:  # a file the user named is not text
        return _fail(f"coolmix: error: a file is not UTF-8 text ({e.reason} at byte {e.start})")
    except OSError as e:
        if e.errno not in USER_PATH_ERRNOS:
            raise
        where = f"path={str(e.filename)!r}: " if e.filename is not None else ""
        return _fail(f"coolmix: error: {where}{e.strerror or e}")
    except KeyboardInterrupt:
        return _fail("coolmix: interrupted", code=130)


def _fail(message: str, code: int = 2) -> int:
    print(message.replace("\r", " ").replace("\n", " "), file=sys.stderr)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
