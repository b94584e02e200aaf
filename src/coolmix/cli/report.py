"""``coolmix report DIR``: regenerate report.md, figures and metrics.json from saved results."""

from __future__ import annotations

import argparse

HELP = "Regenerate a reproduction's report.md, figures and metrics.json from its saved metrics."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dir", help="a `coolmix reproduce` output folder")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from coolmix.errors import ConfigError
    from coolmix.reproduce.report import write_report

    out = Path(args.dir)
    if not out.is_dir():
        raise ConfigError("dir", str(out), "not a directory")
    print(write_report(out))
    return 0
