"""``coolmix plan CONFIG``: preview a mixture's exposure before training (wraps `coolmix.plan.make_plan`).

Prints a table per domain (whole run, then per schedule phase), the warnings in yellow, and
writes ``plan.csv``, ``plan.png`` and the resolved ``plan.toml`` to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from coolmix.cli import add_set_option
from coolmix.cli._plan_files import plot_plan, write_csv
from coolmix.config import check_path, dump_toml
from coolmix.errors import ConfigError
from coolmix.fileio import make_dir, regular_or_missing, write_atomic_text
from coolmix.mixconfig import PlanConfig, load_plan_config
from coolmix.plan import Plan
from coolmix.validate import check_float

HELP = "Preview a mixture plan: samples, tokens and epochs per domain and phase; warnings; CSV + PNG."


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "config", metavar="CONFIG", help="plan config (TOML; YAML accepted), e.g. configs/plan/"
    )
    add_set_option(parser, "--set run.total_steps=1000")
    parser.add_argument(
        "--out", default="plan_out", metavar="DIR", help="where plan.csv/png/toml go (default: ./plan_out)"
    )
    parser.add_argument("--no-plot", action="store_true", help="skip plan.png (no matplotlib needed)")
    parser.add_argument("--json", action="store_true", help="print the plan as JSON instead of tables")
    parser.add_argument(
        "--moments",
        metavar="DOMAIN=S,...|RUN_DIR",
        help="measured per-domain gradient second moments s_i (e.g. en=1.2,sw=30), or a `coolmix train` run "
        "directory whose metrics hold them: says whether upsampling or upweighting has the lower variance",
    )


def run(args: argparse.Namespace) -> int:
    out = check_path("out", args.out)
    cfg = load_plan_config(args.config, args.overrides)
    plan = cfg.plan()
    moments = parse_moments(args.moments, plan.names) if args.moments else None  # refuse before writing
    make_dir(out, "out")
    for name in ("plan.csv", "plan.toml", *(() if args.no_plot else ("plan.png",))):
        regular_or_missing(out / name, "out")  # refuse a planted link before writing any file
    files = [write_csv(plan, out / "plan.csv")]
    resolved = out / "plan.toml"
    write_atomic_text(resolved, dump_toml(cfg.to_dict()), "out")
    files.append(resolved)
    if not args.no_plot:
        files.append(plot_plan(plan, out / "plan.png"))
    if args.json:
        sys.stdout.write(json.dumps(plan.to_dict(), indent=2, ensure_ascii=False) + "\n")
    else:
        render(plan, cfg, title=cfg.name or Path(args.config).name, files=files)
    if moments is not None:
        variance_advice(plan, moments)
    return 0


def parse_moments(text: str, names: Sequence[str]) -> dict[str, float]:
    """``en=1.2,sw=30`` or a run directory (its newest metrics record with a ``variance`` table).

    Every domain needs one second moment s_i, a finite number >= 0 (it is E‖g_i‖²); anything
    else is a `ConfigError` naming ``moments.<domain>``, because a NaN here would turn into
    advice ("gap = nan → upweighting") that means nothing.
    """
    if os.path.isdir(text):  # False for anything that cannot be a directory (e.g. too long a name)
        raw = _moments_from_run(Path(text), text)
    else:
        raw = {}
        for part in text.split(","):
            key, sep, value = part.partition("=")
            if not sep or not key.strip():
                raise ConfigError("moments", part, "expected DOMAIN=NUMBER (or a run directory)")
            try:
                raw[key.strip()] = float(value)
            except ValueError:
                raise ConfigError(f"moments.{key.strip()}", value, "expected a number") from None
    missing = [n for n in names if n not in raw]
    if missing:
        raise ConfigError("moments", missing[0], "no second moment given for this domain")
    out = {}
    for n in names:
        v = raw[n]
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise ConfigError(f"moments.{n}", v, "must be a finite number >= 0")
        out[n] = check_float(f"moments.{n}", v, lo=0.0)
    return out


def _moments_from_run(run_dir: Path, text: str) -> dict[str, object]:
    """s_i from the newest usable ``variance`` record of a run's metrics (damaged lines skipped)."""
    from coolmix.diagnostics.ledger import read_metrics

    metrics = run_dir / "metrics.jsonl"
    if not regular_or_missing(metrics, "moments"):
        raise ConfigError("moments", text, "that run directory has no metrics.jsonl")
    usable = [
        r["variance"]["s"]
        for r in read_metrics(metrics).records
        if isinstance(r.get("variance"), dict) and isinstance(r["variance"].get("s"), dict)
    ]
    if not usable:
        raise ConfigError("moments", text, "that run's metrics have no gradient-variance measurements")
    return dict(usable[-1])


def variance_advice(plan: Plan, moments: dict[str, float]) -> None:
    """Per schedule phase: Theorem 2's exact gap Σ p_i (w_i − 1) s_i with measured s_i (w = p / p_1),
    next to the equal-s estimate s̄·(F − 1), and which estimator has the lower variance."""
    from rich.console import Console

    console = Console(highlight=False)
    total = sum(plan.sizes.values())
    q = {n: plan.sizes[n] / total for n in plan.names}
    mean_s = sum(moments.values()) / len(moments)
    seen = set()
    for k, ph in enumerate(plan.phases):
        p = ph.probs_start
        key = tuple(round(p[n], 12) for n in plan.names)
        if key in seen:
            continue
        seen.add(key)
        gap = sum(p[n] * (p[n] / q[n] - 1.0) * moments[n] for n in plan.names)
        f = sum(p[n] ** 2 / q[n] for n in plan.names)
        if not (math.isfinite(gap) and math.isfinite(mean_s * (f - 1))):
            raise ConfigError("moments", dict(moments), "too large: the variance gap overflows")
        tau = ph.tau_start
        label = f"τ={tau:g}" if tau is not None else f"phase {k}"
        if abs(f - 1.0) < 1e-12:
            console.print(f"{label}: proportional sampling; upsampling and upweighting coincide")
            continue
        better = "upsampling (temperature sampling)" if gap > 0 else "upweighting (scalarization)"
        console.print(
            f"{label}: E‖g_S‖² − E‖g_TS‖² = {gap:.4g} with your s_i "
            f"(equal-s estimate {mean_s * (f - 1):.4g}, F={f:.3g}) → [bold]{better}[/bold] has the lower "
            "single-sample gradient variance"
        )


def render(
    plan: Plan, cfg: PlanConfig | None = None, title: str = "plan", files: Sequence[Path] = ()
) -> None:
    """Print the plan as rich tables (whole run, per phase), warnings and notes."""
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    wide = sys.stdout.isatty() or "COLUMNS" in os.environ  # else rich assumes 80 columns
    console = Console(width=None if wide else 140, highlight=False)
    T, B = plan.total_steps, plan.batch_size
    volume = ""
    if plan.tokens is not None:
        volume = f" ≈ {_si(sum(plan.tokens.values()))} {plan.tokens_unit}"
    ranks = f" · world_size {cfg.run.world_size}" if cfg is not None and cfg.run.world_size > 1 else ""
    console.print(f"[bold]{escape(title)}[/bold] — {escape(_schedule_text(plan))}")
    console.print(
        f"{T:,} steps × {B:,} = {T * B:,} examples{volume} · seed {plan.seed} · "
        f"{plan.composition} composition{ranks}"
    )
    flagged = {n for n in plan.names if any(w.startswith(f"{n}:") for w in plan.warnings)}

    unit = plan.unit
    whole = Table(title="whole run", title_justify="left")
    whole.add_column("domain")
    whole.add_column(f"size ({unit})", justify="right")
    whole.add_column("examples", justify="right")
    whole.add_column("p per phase" if len(plan.phases) > 1 else "p", justify="right")
    whole.add_column("samples", justify="right")
    if plan.tokens is not None:
        whole.add_column(str(plan.tokens_unit), justify="right")
    whole.add_column("epochs", justify="right")
    whole.add_column("target share", justify="right")
    S = plan.simulated_steps
    partial = plan.realised is not None and S < T  # the sampler was replayed for the first S steps only
    if partial:  # so the realised share sits next to the target over the same steps, both labelled
        whole.add_column(f"target share (first {_si(S)} steps)", justify="right")
    realised_head = f"realised share (first {_si(S)} steps)" if partial else "realised share"
    whole.add_column(realised_head, justify="right")
    prefix = _share(plan.realised_target) if partial and plan.realised_target is not None else None
    for n in plan.names:
        row = [
            n,
            _si(plan.sizes[n]),
            _si(plan.examples[n]),
            " → ".join(_p(ph.probs_start[n]) for ph in plan.phases[:4])
            + (" → …" if len(plan.phases) > 4 else ""),
            _si(plan.samples[n]),
        ]
        if plan.tokens is not None:
            row.append(_si(plan.tokens[n]))
        row += [_g(plan.epochs[n]), _pct(plan.target_share[n])]
        if partial:
            row.append(_pct_or_dash(prefix, n))
        row.append(_pct_or_dash(plan.realised_share, n))
        whole.add_row(*row, style="yellow" if n in flagged else None)
    if plan.realised is not None:
        exact = "; exact composition: within 1 of the target to the end" * (plan.composition == "exact")
        whole.caption = (
            f"realised: the sampler's counts over {plan.simulated_steps:,} steps, within "
            f"{plan.max_deviation:.2f} examples of target"
            + (f" (the first {S:,} of {T:,} steps{exact})" if partial else "")
        )
        whole.caption_justify = "left"
    console.print(whole)

    if len(plan.phases) > 1:
        per = Table(title="per phase", title_justify="left")
        for name, justify in (
            ("phase", "left"),
            ("steps", "left"),
            ("τ", "left"),
            ("domain", "left"),
            ("p", "right"),
            ("min p·B", "right"),
            ("samples", "right"),
            *(((str(plan.tokens_unit), "right"),) if plan.tokens is not None else ()),
            ("epochs", "right"),
            ("cum. epochs", "right"),
            ("realised share", "right"),
        ):
            per.add_column(name, justify=justify)  # type: ignore[arg-type]
        for ph in plan.phases:
            for j, n in enumerate(plan.names):
                p0, p1 = ph.probs_start[n], ph.probs_end[n]
                row = [
                    str(ph.index) if j == 0 else "",
                    f"{ph.start:,}–{ph.end - 1:,}" if j == 0 else "",
                    ph.label if j == 0 else "",
                    n,
                    _p(p0) if math.isclose(p0, p1, rel_tol=1e-9, abs_tol=0) else f"{_p(p0)}→{_p(p1)}",
                    _g(ph.min_per_batch[n]),
                    _si(ph.samples[n]),
                ]
                if ph.tokens is not None:
                    row.append(_si(ph.tokens[n]))
                row += [
                    _g(ph.epochs[n]),
                    _g(ph.cumulative_epochs[n]),
                    _pct_or_dash(ph.realised_share, n),
                ]
                low = 0 < ph.min_per_batch[n] < 1
                per.add_row(*row, style="yellow" if low else None, end_section=j == len(plan.names) - 1)
        console.print(per)

    for w in plan.warnings:
        console.print(f"[yellow]warning:[/yellow] {escape(w)}")
    for note in plan.notes:
        console.print(f"[dim]note: {escape(note)}[/dim]")
    if files:
        console.print(f"[dim]wrote {', '.join(str(f) for f in files)}[/dim]")


def _schedule_text(plan: Plan) -> str:
    d = plan.schedule.to_dict()
    kind = d.pop("kind", "schedule")
    args = ", ".join(f"{k}={_compact(v)}" for k, v in d.items())
    return f"{kind}({args})"


def _compact(v: object) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}: {_compact(x)}" for k, x in v.items()) + "}"
    if isinstance(v, list):
        return "[" + ", ".join(_compact(x) for x in v) + "]"
    if isinstance(v, float):
        return f"{v:g}"
    return str(v)


def _si(x: float) -> str:
    """Counts with a suffix: 2.73T, 162B, 51.2M, 9.9k, 12.5."""
    a = abs(float(x))
    for scale, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if a >= scale:
            return f"{x / scale:.3g}{suffix}"
    return f"{x:.3g}"


def _p(p: float) -> str:
    return f"{p:.3g}"


def _g(x: float) -> str:
    return f"{x:.3g}"


def _pct(s: float) -> str:
    return f"{100 * s:.3g}%"


def _share(counts: dict[str, float]) -> dict[str, float]:
    total = sum(counts.values())
    return {n: (v / total if total > 0 else 0.0) for n, v in counts.items()}


def _pct_or_dash(shares: dict[str, float] | None, name: str) -> str:
    return "—" if shares is None else _pct(shares[name])
