"""``coolmix rescore DIR``: score every test item of a reproduction's finished runs (from checkpoints)."""

from __future__ import annotations

import argparse

HELP = (
    "Add per-item test scores (every test item's loss; MT: each sentence's chrF statistics) to the "
    "finished runs of a reproduction folder, from their final checkpoints, then rebuild its report."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "dir", help="a `coolmix reproduce` output folder (its runs keep their final checkpoint)"
    )
    parser.add_argument("--force", action="store_true", help="rescore runs that already have per-item scores")


def run(args: argparse.Namespace) -> int:
    from coolmix.cli.report import check_saved_results
    from coolmix.config import check_path
    from coolmix.errors import ConfigError
    from coolmix.fileio import regular_or_missing
    from coolmix.reproduce.report import write_report
    from coolmix.reproduce.results import read_json_object, run_dirs
    from coolmix.reproduce.runner import write_result
    from coolmix.train.item_scores import ITEMS_KEY
    from coolmix.train.rescore import rescore_run
    from coolmix.train.rundir import RunLock
    from coolmix.train.tasks import DataCache

    out = check_path("dir", args.dir)
    if not out.is_dir():
        raise ConfigError("dir", str(out), "not a directory")
    check_saved_results(out)
    runs = run_dirs(out)
    if not runs:
        raise ConfigError("dir", str(out), "holds no finished runs (runs/<experiment>/<run>/result.json)")
    cache, done = DataCache(), 0
    with RunLock(out, "coolmix rescore"):  # not while a reproduce writes the folder
        for d in runs:
            rel = d.relative_to(out).as_posix()
            record = read_json_object(d / "result.json", f"{rel}/result.json")
            if ITEMS_KEY in record and not args.force:
                continue
            record[ITEMS_KEY] = rescore_run(d, cache)
            write_result(d, record)
            done += 1
            print(f"rescored {rel}", flush=True)
    print(f"{done} of {len(runs)} runs rescored")
    if regular_or_missing(out / "preset.json", "preset.json"):
        print(write_report(out))
    return 0
