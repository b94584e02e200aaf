"""``coolmix report DIR``: regenerate report.md, figures and metrics.json from saved results."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "Regenerate a reproduction's report.md, figures and metrics.json from its saved metrics."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir",
        help="a `coolmix reproduce` output folder, or a committed report folder (its metrics.json "
        "holds every run's curves and final scores, so no runs or checkpoints are needed)",
    )


def run(args: argparse.Namespace) -> int:
    from coolmix.config import check_path
    from coolmix.errors import ConfigError
    from coolmix.reproduce.report import write_report

    out = check_path("dir", args.dir)
    if not out.is_dir():
        raise ConfigError("dir", str(out), "not a directory")
    check_saved_results(out)
    print(write_report(out))
    return 0


def check_saved_results(out: Path) -> None:
    """Refuse, with one line naming the file, saved results the report cannot read.

    ``runs.json`` must be a JSON list of run folders (strings); ``theory.json``, ``preset.json``
    and every run's ``result.json`` must be JSON objects; each must be a regular file (a link,
    FIFO or device is never followed or read). (A hand-edited or truncated file, or a ``null``
    left by an interrupted write, would otherwise surface as a traceback mid-report.)
    """
    from coolmix.errors import ConfigError
    from coolmix.fileio import regular_or_missing
    from coolmix.reproduce.results import read_json, run_dirs

    expected = {"runs.json": list, "theory.json": dict, "preset.json": dict}
    files = [(out / name, name) for name in expected if regular_or_missing(out / name, name)]
    files += [(d / "result.json", f"{d.relative_to(out).as_posix()}/result.json") for d in run_dirs(out)]
    for path, name in files:
        kind = expected.get(path.name if path.parent == out else "", dict)
        value = read_json(path, name)
        if not isinstance(value, kind):
            what = "a list of run folders" if kind is list else "a JSON object"
            raise ConfigError(name, value, f"must be {what}")
        if kind is list and not all(isinstance(x, str) for x in value):
            bad = next(x for x in value if not isinstance(x, str))
            raise ConfigError(name, bad, "entries must be run folder names")
