"""``coolmix ablation --label cosine=DIR --label constant=DIR``: which verdicts move with a setting."""

from __future__ import annotations

import argparse

HELP = "Compare the claims' verdicts across reproductions that differ in one setting (e.g. the LR schedule)."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--label",
        action="append",
        default=[],
        metavar="NAME=DIR",
        help="a setting's name and its reproduction (or committed report) folder; give two or more",
    )
    parser.add_argument("--experiment", default="lm", help="the experiment to compare (default lm)")
    parser.add_argument("--out", default=None, help="write the markdown table here (default: print it)")


def run(args: argparse.Namespace) -> int:
    from coolmix.config import check_path
    from coolmix.errors import ConfigError
    from coolmix.fileio import write_atomic_text
    from coolmix.reproduce.ablation import verdict_table
    from coolmix.reproduce.compare import Missing

    dirs = {}
    for item in args.label:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ConfigError("label", item, "must be NAME=DIR")
        if name in dirs:
            raise ConfigError("label", item, f"the name {name!r} is given twice")
        folder = check_path("label", path)
        if not folder.is_dir():
            raise ConfigError("label", item, "not a directory")
        dirs[name] = folder
    if len(dirs) < 2:
        raise ConfigError("label", args.label, "give at least two NAME=DIR folders")
    try:
        table = verdict_table(dirs, args.experiment)
    except Missing as e:
        raise ConfigError("label", args.label, str(e)) from None
    if args.out:
        write_atomic_text(check_path("out", args.out), table + "\n")
        print(args.out)
    else:
        print(table)
    return 0
