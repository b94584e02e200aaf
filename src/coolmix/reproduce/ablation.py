"""Which verdicts move with a setup axis (the LR schedule, say): one table over several reproductions.

Each labelled folder is a `coolmix reproduce` output or a committed report folder run with one
setting of the axis (``--set optim.schedule=inverse_sqrt``, ...). The table re-judges every claim
on the **same** methods and seeds in each folder (those common to all), so a verdict that moves
moved with the setting, not with the seed count or the method list.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from coolmix.reproduce.claims import evaluate_claims
from coolmix.reproduce.compare import Missing, Verdict
from coolmix.reproduce.premise import retained_penalty
from coolmix.reproduce.report import load_inputs
from coolmix.reproduce.results import Runs
from coolmix.reproduce.tables import markdown

__all__ = ["ABLATED_CLAIMS", "common_runs", "lr_profile", "verdict_table"]

ABLATED_CLAIMS = ("E5", "E5m", "E6", "E8m", "E9")
"""The Cooldown claims the Table-4 core decides (E7 needs the dense schedules, E8 DoReMi)."""


def common_runs(folders: Mapping[str, Runs], experiment: str = "lm") -> dict[str, Runs]:
    """Each folder's main runs of ``experiment`` restricted to the (method, seed) pairs in every folder."""
    keys = [
        {(r.method, r.seed) for r in runs.runs if r.experiment == experiment and r.role == "main"}
        for runs in folders.values()
    ]
    shared = set.intersection(*keys) if keys else set()
    if not shared:
        raise Missing(f"no (method, seed) of experiment '{experiment}' is in every folder")
    return {
        name: Runs(
            [
                r
                for r in runs.runs
                if r.experiment == experiment and (r.role != "main" or (r.method, r.seed) in shared)
            ]
        )
        for name, runs in folders.items()
    }


def lr_profile(meta: Mapping[str, Any], experiment: str = "lm") -> tuple[float, float]:
    """(mean LR factor before, after the midpoint): what Cooldown's τ=5 and τ=1 halves train at,
    as fractions of the peak, exactly from the folder's preset and overrides (NaN if unknown)."""
    from coolmix.errors import ConfigError
    from coolmix.reproduce.specs import preset
    from coolmix.train.config import TrainConfig
    from coolmix.train.loop import lr_factor

    try:
        p = preset(str(meta["preset"]), tuple(meta.get("overrides") or ()))
        exp = next(e for e in p.experiments if e.key == experiment)
        cfg = TrainConfig.from_dict(exp.base)
    except (KeyError, StopIteration, ConfigError, TypeError):
        return math.nan, math.nan
    total = cfg.run.total_steps
    f = [lr_factor(cfg.optim, total, s) for s in range(total)]
    half = total // 2
    return sum(f[:half]) / half, sum(f[half:]) / (total - half)


def _cell(v: Verdict) -> str:
    if not v.primary:
        return f"**{v.verdict}**"
    return f"**{v.verdict}**<br>" + "<br>".join(
        f"{c.interval.text(2, '%' if c.relative else c.unit)}" for c in v.primary
    )


def verdict_table(dirs: Mapping[str, Path], experiment: str = "lm") -> str:
    """A markdown section: per claim and setting, the verdict and its primary intervals; a last
    column says whether the verdict moved. Also each setting's LR profile and retained penalty."""
    if len(dirs) < 2:
        raise Missing("an ablation needs at least two labelled folders")
    inputs = {name: load_inputs(Path(d)) for name, d in dirs.items()}
    runs = common_runs({name: x[0] for name, x in inputs.items()}, experiment)
    verdicts = {name: {v.claim: v for v in evaluate_claims(rs, {})} for name, rs in runs.items()}
    names = list(dirs)
    rows = []
    for claim in ABLATED_CLAIMS:
        vs = [verdicts[n][claim] for n in names]
        moved = "yes" if len({v.verdict for v in vs}) > 1 else "no"
        rows.append([claim, *(_cell(v) for v in vs), moved])
    any_runs = next(iter(runs.values()))
    methods = sorted({r.method for r in any_runs.runs if r.role == "main"})
    seeds = sorted({r.seed for r in any_runs.runs if r.role == "main"})
    prof, kept = [], []
    for n in names:
        b, a = lr_profile(inputs[n][2], experiment)
        prof.append(f"{b:.2f} / {a:.2f} (×{b / a:.2f})" if math.isfinite(a) and a > 0 else "–")
        try:
            kept.append(retained_penalty(runs[n], experiment).text(2))
        except Missing:
            kept.append("–")
    rows.append(["Cooldown's mean LR before / after the switch (of peak)", *prof, ""])
    rows.append(["retained HRL penalty (E5's scale-free figure)", *kept, ""])
    head = (
        f"Methods: {', '.join(methods)}; seeds: {', '.join(map(str, seeds))} (the runs common to every "
        "setting; each claim is re-judged on exactly these). Cells: verdict, then the primary intervals "
        "in the order of the claim's rule (see a folder's report.md for the labels). A verdict that moves "
        "depends on the setting; one that stays is robust to it at this scale."
    )
    return head + "\n\n" + markdown(["claim", *names, "moved?"], rows)

