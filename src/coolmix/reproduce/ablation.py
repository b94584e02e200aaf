"""Which verdicts move with a setup axis (the LR schedule, say): one table over several reproductions.

Each labelled folder is a `coolmix reproduce` output or a committed report folder run with one
setting of the axis (``--set optim.schedule=inverse_sqrt``, ...). The table re-judges every claim
on the **same** methods and seeds in each folder (those common to all), so a verdict that moves
moved with the setting, not with the seed count or the method list.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from coolmix.reproduce.claims import evaluate_claims
from coolmix.reproduce.compare import STATICS, Missing, Verdict, groups, need
from coolmix.reproduce.premise import beats_best_static, retained_penalty
from coolmix.reproduce.report import load_inputs
from coolmix.reproduce.results import Runs
from coolmix.reproduce.stats import Interval
from coolmix.reproduce.tables import markdown
from coolmix.train.item_scores import ITEMS_KEY

__all__ = ["ABLATED_CLAIMS", "common_runs", "figure_rows", "lr_profile", "trend", "verdict_table"]

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
    # like with like: every folder scores every test item, or none does (the headline slice)
    whole = all(runs.whole_test(experiment) for runs in folders.values())
    return {
        name: Runs(
            [
                r if whole else replace(r, final={k: v for k, v in r.final.items() if k != ITEMS_KEY})
                for r in runs.runs
                if r.experiment == experiment and (r.role != "main" or (r.method, r.seed) in shared)
            ]
        )
        for name, runs in folders.items()
    }


def trend(intervals: Sequence[Interval | None]) -> str:
    """The direction of a figure along the labelled order: "rises"/"falls" when the means move
    monotonically and the first and last intervals do not overlap; else "no clear trend"."""
    got = [iv for iv in intervals if iv is not None]
    if len(got) < 2 or len(got) < len(intervals):
        return "–"
    means = [iv.mean for iv in got]
    first, last = got[0], got[-1]
    apart = first.hi < last.lo or last.hi < first.lo
    if apart and all(b > a for a, b in itertools.pairwise(means)):
        return "rises"
    if apart and all(b < a for a, b in itertools.pairwise(means)):
        return "falls"
    return "no clear trend"


def figure_rows(runs: Mapping[str, Runs], experiment: str = "lm") -> list[tuple[str, list[Interval | None]]]:
    """The scale-free figures per folder: E5's retained HRL penalty and, per LRL, E8's gap
    (Cooldown − the best static τ chosen on dev, test loss in nats; < 0: Cooldown better)."""
    names = list(runs)
    kept: list[Interval | None] = []
    gaps: dict[str, list[Interval | None]] = {}
    for n in names:
        try:
            kept.append(retained_penalty(runs[n], experiment))
        except Missing:
            kept.append(None)
        try:
            got = need(runs[n], experiment, ["cooldown", *STATICS])
        except Missing:
            continue
        low = groups(got["cooldown"][0])["LRL"]
        for c, lang in zip(beats_best_static(got, low), low, strict=True):
            gaps.setdefault(lang, [None] * len(names))[names.index(n)] = c.interval
    rows = [("retained HRL penalty (E5's scale-free figure)", kept)]
    rows += [(f"E8 gap on {lang}: Cooldown − best static τ (dev-chosen)", g) for lang, g in gaps.items()]
    return rows


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
    prof = []
    for n in names:
        b, a = lr_profile(inputs[n][2], experiment)
        prof.append(f"{b:.2f} / {a:.2f} (×{b / a:.2f})" if math.isfinite(a) and a > 0 else "–")
    rows.append(["Cooldown's mean LR before / after the switch (of peak)", *prof, ""])
    for title, ivs in figure_rows(runs, experiment):
        rows.append([title, *("–" if iv is None else iv.text(2) for iv in ivs), trend(ivs)])
    whole = any_runs.whole_test(experiment)
    head = (
        f"Methods: {', '.join(methods)}; seeds: {', '.join(map(str, seeds))} (the runs common to every "
        "setting; each claim is re-judged on exactly these). Cells: verdict, then the primary intervals "
        "in the order of the claim's rule (see a folder's report.md for the labels). A verdict that moves "
        "depends on the setting; one that stays is robust to it at this scale. The figures' last column "
        "reads their direction along the columns' order (rises/falls: monotone means and the first and "
        "last intervals apart). Test scores: "
        + ("every test item in every folder." if whole else "the headline slice (not every folder has "
           "per-item scores; `coolmix rescore` adds them).")
    )
    return head + "\n\n" + markdown(["claim", *names, "moved? / trend"], rows)

