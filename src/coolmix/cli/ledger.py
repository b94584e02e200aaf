"""``coolmix ledger RUN_DIR``: realised vs planned exposure per domain, from a run's metrics."""

from __future__ import annotations

import argparse

HELP = "Print a run's exposure ledger (realised vs planned examples, epochs, repeats) and plot it."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", help="a `coolmix train` run directory (with metrics.jsonl)")
    parser.add_argument("--no-plot", action="store_true", help="skip ledger.png")


def run(args: argparse.Namespace) -> int:
    import sys

    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from coolmix.config import check_path
    from coolmix.diagnostics.ledger import read_ledger
    from coolmix.errors import ConfigError
    from coolmix.fileio import regular_or_missing

    run_dir = check_path("run_dir", args.run_dir)
    path = run_dir / "metrics.jsonl"
    if not run_dir.is_dir():
        raise ConfigError("run_dir", args.run_dir, "not a directory")
    if not regular_or_missing(path, "run_dir"):
        raise ConfigError("run_dir", args.run_dir, "no metrics.jsonl there")
    png = run_dir / "ledger.png"
    if not args.no_plot:
        regular_or_missing(png, "run_dir")  # refused before anything is printed, not after
    read = read_ledger(path)
    records = read.records
    if not records:
        why = "its metrics have no ledger (trained before the ledger existed?)"
        if read.skipped:
            why = f"no usable ledger record in metrics.jsonl; {read.note()}"
        raise ConfigError("run_dir", args.run_dir, why)
    if read.skipped:  # a crash's torn last line must not hide the good records before it
        print(f"coolmix: warning: {read.note()}", file=sys.stderr)
    last = records[-1]
    table = Table(title=f"exposure ledger after step {last['step']:,}")
    for col in (
        "domain",
        "examples",
        "tokens",
        "share",
        "target share",
        "Δ vs plan",
        "epochs",
        "max repeats",
    ):
        table.add_column(col, justify="left" if col == "domain" else "right")
    for name, row in last["ledger"].items():
        table.add_row(
            escape(name),
            f"{row['examples']:,}",
            f"{row['tokens']:,}",
            f"{row['share']:.2%}",
            f"{row['target_share']:.2%}",
            f"{row['examples'] - row['target_examples']:+.2f}",
            f"{row['epochs']:.3g}",
            str(row["max_repeats"]),
        )
    Console().print(table)
    if not args.no_plot:
        _plot(records, png)
        print(f"wrote {png}")
    return 0


def _plot(records: list, out) -> None:
    import matplotlib

    from coolmix.fileio import save_figure

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(records[-1]["ledger"])
    steps = [r["step"] for r in records]
    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 3.4))
    for n in names:
        line = a.plot(steps, [r["ledger"][n]["examples"] for r in records], label=f"{n} realised")[0]
        a.plot(
            steps, [r["ledger"][n]["target_examples"] for r in records], "--", color=line.get_color(), lw=1
        )
        b.plot(steps, [r["ledger"][n]["epochs"] for r in records], color=line.get_color(), label=n)
    a.set_title("examples drawn: realised (solid) vs planned (dashed)")
    b.set_title("cumulative epochs")
    b.set_yscale("log")
    for ax in (a, b):
        ax.set_xlabel("step")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.tight_layout()
    try:
        save_figure(fig, out, field="run_dir")  # atomic, never through a link
    finally:
        plt.close(fig)
