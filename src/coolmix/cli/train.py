"""`coolmix train CONFIG [--out DIR] [--resume] [--set key=value ...]`: one training run.

Thin: parse, load the config with overrides, call `coolmix.train.train`, print the result.
Under ``torchrun --nproc_per_node=N -m coolmix train CONFIG`` every rank runs this and the
trainer joins the process group itself (gloo on CPU, NCCL on GPU); rank 0 alone writes files.
Warnings of the library (the ``coolmix`` logger) are shown on stderr, one line each.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from coolmix.cli import add_set_option
from coolmix.cli._log import show_warnings

HELP = "train one model (LM or MT) with a balancing strategy from a TOML config"

_EPILOG = """\
examples:
  coolmix train configs/train/lm_bible_cooldown.toml --out runs/lm_cooldown
  coolmix train configs/train/mt_gettext_tau5.toml --set run.total_steps=500 --set run.seed=1
  coolmix train configs/train/lm_bible_tau1.toml --out runs/lm_tau1 --resume   # after a crash
  torchrun --nproc_per_node=2 -m coolmix train configs/train/lm_bible_tau5.toml --set run.threads=1
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = HELP
    parser.epilog = _EPILOG
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("config", type=Path, help="TOML (or YAML) config; see configs/train/")
    parser.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<config name>)")
    parser.add_argument(
        "--resume", action="store_true", help="continue from the newest good checkpoint in --out (if any)"
    )
    add_set_option(parser, "--set balance.sample=5 --set run.total_steps=200")
    parser.add_argument(
        "--quiet", action="store_true", help="no progress bar (metrics.jsonl is written anyway)"
    )


def run(args: argparse.Namespace) -> int:
    from coolmix.integrations.ranks import env_int
    from coolmix.train import load_config, train  # torch is imported here, not at CLI start-up

    main = env_int("RANK", 0) == 0
    show_warnings(main)
    cfg = load_config(args.config, args.overrides)
    out = args.out if args.out is not None else Path("runs") / args.config.stem
    record = train(cfg, out, resume=args.resume, console=main and not args.quiet)
    if main:
        _summary(record, out)
    return 0


def _summary(record: dict, out: Path) -> None:
    from rich.console import Console
    from rich.table import Table

    splits = [s for s in ("train", "dev", "test") if s in record]
    metrics = [(s, m) for s in splits for m in record[s]]
    table = Table(title=f"step {record.get('step')} — {out}")
    table.add_column("domain")
    for s, m in metrics:
        table.add_column(f"{s} {m}", justify="right")
    for d in record.get("examples", {}):
        cells = [record[s][m].get(d) for s, m in metrics]
        table.add_row(d, *("–" if v is None else f"{v:.3f}" for v in cells))
    Console().print(table)
