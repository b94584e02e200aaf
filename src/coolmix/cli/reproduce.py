"""``coolmix reproduce --preset quick``: the paper's experiments on real data and a claims report."""

from __future__ import annotations

import argparse
import sys
import time

from coolmix.cli import add_set_option

HELP = "Run the paper's experiments at CPU scale and write report.md with a claims table."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from coolmix.reproduce.specs import PRESETS  # the one list of presets: help never goes stale

    parser.add_argument(
        "--preset",
        default="quick",
        help=f"one of {', '.join(PRESETS)}; quick takes 12–15 min on 2 cores (README, *Reproducing the "
        "paper*, gives each preset's experiments and time)",
    )
    parser.add_argument("--out", default="reproduce_out", help="output folder (runs, figures, report.md)")
    parser.add_argument("--force", action="store_true", help="retrain finished runs instead of reusing them")
    parser.add_argument(
        "--only",
        action="append",
        default=[],
        metavar="EXPERIMENT",
        help="run only this experiment (convergence, lm, mt); repeatable",
    )
    add_set_option(parser, "--set run.bf16=true (applies to every experiment's runs)")
    parser.add_argument(
        "--seeds", default="", metavar="0,1,2", help="seeds for every experiment (default: the preset's)"
    )
    parser.add_argument("--workers", type=int, default=None, help="parallel training processes (default 2)")


MAX_WORKERS = 256
"""Most parallel training processes ``--workers`` accepts (0 trains in this process)."""


def run(args: argparse.Namespace) -> int:
    from rich.console import Console

    from coolmix.config import check_path
    from coolmix.reproduce.pipeline import reproduce
    from coolmix.reproduce.runner import Progress
    from coolmix.validate import check_int

    # every flag is checked before the first run starts: a bad one costs a line, not a half-run grid
    workers = None if args.workers is None else check_int("workers", args.workers, lo=0, hi=MAX_WORKERS)
    seeds = _seeds(args.seeds)
    out = check_path("out", args.out)
    check_experiments(args.preset, tuple(args.overrides), tuple(args.only), seeds)

    console = Console(stderr=True)
    state = {"total": 0, "done": 0, "t0": time.perf_counter()}

    def start(total: int) -> None:
        state["total"] = total
        console.print(f"[bold]{total} runs[/] (finished ones are reused; --force retrains)")

    def done(r) -> None:
        state["done"] += 1
        el = time.perf_counter() - state["t0"]
        how = "cached" if r.cached else f"{r.seconds:.0f}s"
        dev = r.record.get("dev", {}).get("loss", {})
        losses = " ".join(f"{k}={v:.2f}" for k, v in dev.items())
        console.print(
            f"[{state['done']:>2}/{state['total']}] {r.spec.id:<32} {how:>7}  dev {losses}  "
            f"[dim]({el / 60:.1f} min)[/]"
        )

    progress = Progress(start=start, done=done, note=lambda t: console.print(f"[cyan]• {t}[/]"))
    path = reproduce(
        args.preset,
        out,
        force=args.force,
        overrides=tuple(args.overrides),
        only=tuple(args.only),
        seeds=seeds,
        workers=workers,
        progress=progress,
    )
    console.print(f"[bold green]report:[/] {path}")
    print(path, file=sys.stdout)
    return 0


def check_experiments(
    name: str, overrides: tuple[str, ...], only: tuple[str, ...], seeds: tuple[int, ...]
) -> None:
    """Build every experiment's trainer config with the overrides, so a bad ``--set`` is one line
    naming its key (``run.total_steps='abc': must be an integer``) before any run starts."""
    from coolmix.reproduce.specs import preset
    from coolmix.train import TrainConfig

    for experiment in preset(name, overrides, only, seeds).experiments:
        TrainConfig.from_dict(experiment.base)


def _seeds(text: str) -> tuple[int, ...]:
    """``0,1,2`` -> (0, 1, 2); empty -> () (the preset's seeds); anything else is one ConfigError."""
    from coolmix.errors import ConfigError
    from coolmix.validate import check_int

    parts = [x.strip() for x in text.split(",")]
    if text.strip() and any(not x for x in parts):
        raise ConfigError("seeds", text, "expected comma-separated integers, e.g. 0,1,2")
    seeds = []
    for x in parts if text.strip() else []:
        try:
            value = int(x)
        except ValueError:
            raise ConfigError("seeds", text, "expected comma-separated integers, e.g. 0,1,2") from None
        seeds.append(check_int("seeds", value, lo=0, hi=2**32 - 1))
        if seeds.count(seeds[-1]) > 1:  # the same runs twice: one folder trained by two workers
            raise ConfigError("seeds", text, f"seed {seeds[-1]} is listed twice")
    return tuple(seeds)
