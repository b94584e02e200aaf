"""Balancing methods as data: one registry, `METHODS`, one `Method` entry per method.

A method is a name, a label, a group (what the report tabulates it with), a plot colour, the
config sections it sets over its experiment's base config, and the runs it needs: DoReMi's
main run needs its proxy, which needs its reference; UniMax-on-dev needs every run of its cap
grid. The runner expands an experiment's methods into that DAG of runs generically, so adding
a baseline (with or without dependencies) is one entry here. Two run kinds: ``"train"`` (a
trainer config) and ``"select"`` (no training: the run is the member of its needs with the best
dev score, `Selection`). HRL/LRL-dependent methods (Order Matters, UniMax) read the
experiment's sizes from the `Setting`.

Calibration choices, each stated once here:

- **Clipping.** Methods ending in ``_clip`` clip the global gradient norm at `CLIP_NORM`; the
  convergence experiment's base config turns clipping off, so ``tau5`` vs ``scal5`` measures
  sampling vs scalarization alone and ``tau5_clip`` vs ``scal5_clip`` shows what clipping adds
  (a w ≈ 20 example makes the scalarized batch's ‖g‖ large, and clipping shrinks exactly those).
- **UniMax's cap N** (`unimax_epochs`). Chung et al. 2023 leave N a hyper-parameter (1–5
  epochs recommended at their scale) and allocate the budget by their Alg. 1: smallest language
  first, an equal share of what is left, capped at N epochs, the leftover carried to the larger
  ones. ``unimax`` sets N from the budget: the epochs the scarcest language gets under τ = 5 at
  that budget, so UniMax repeats it exactly as much as the strongest static upsampler does and
  only the allocation rule differs (a fixed N = 4 dropped our 30-verse Swahili after 15 of 360
  steps, and at the MT budget never bound). ``unimax_dev`` instead picks N on dev from a grid: N = 1…5
  (``unimax_n1`` … ``unimax_n5``) and that budget-derived N (``unimax``); see `UNIMAX_DEV`.
  Static: the allocation as a fixed distribution; dynamic (the paper's App. A): uniform until a
  language has been drawn N epochs, then it is dropped.
- **DoReMi** (three runs): reference = proxy-sized model at the author's fork weights
  ``mc4_alpha_0.3`` (τ = 3.33, `DOREMI_REFERENCE_TAU`); proxy sampled uniformly (Xie et al.
  Alg. 1 samples from the uniform domain distribution, so every domain is in every batch),
  per-token excess, η = 1, ε = 1e-3; the main model trains on the time-averaged α. We pick
  τ = 3.33 over uniform because uniform repeats the scarcest language tens of times more in
  the reference than any main run does, so its reference loss there is a memorised floor the
  proxy can never reach, and DoReMi would chase that gap.
- **Late upsampling** (Blakeney et al. 2024, arXiv 2406.03476): τ = 1, then τ = 5 for the
  last 20% of steps. **τ warm-up** (Wang et al. 2020, arXiv 2010.02523): τ linear 1 → 5.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from coolmix.distributions import temperature_probs
from coolmix.errors import ConfigError

__all__ = [
    "CLIP_NORM",
    "DOREMI_REFERENCE_TAU",
    "GROUPS",
    "METHODS",
    "TABLE",
    "UNIMAX_DEV",
    "Finished",
    "Method",
    "Selection",
    "Setting",
    "balance_for",
    "color",
    "compute_parts",
    "high_resource",
    "in_groups",
    "method_sections",
    "tabulated",
    "unimax_epochs",
]

CLIP_NORM = 1.0
"""Gradient-norm clip of the ``*_clip`` methods (the trainer's default and the fork's)."""
DOREMI_REFERENCE_TAU = 1 / 0.3
"""DoReMi's reference weights: the fork's ``mc4_alpha_0.3`` (α = 0.3, τ = 3.33)."""
LATE_AT = 0.8
"""Late upsampling switches to τ = 5 for the last 20% of steps (Blakeney et al. 2024)."""

GROUPS = {
    "static": "static temperature sampling",
    "scalarization": "scalarization (τ=1 sampling, loss re-weighted to τ)",
    "clipping": "the gradient-clipping confound of the convergence pairs",
    "baseline": "the paper's baselines (Table 4)",
    "proposed": "Cooldown and its adaptive variant",
    "ablation": "the paper's schedule ablations (Figs. 5–7)",
    "beyond": "schedules beyond the paper that upsample late",
    "variant": "a variant kept in metrics.json, not tabulated",
    "grid": "members of a method's hyper-parameter grid (shown in that grid's table)",
    "internal": "runs another method needs (DoReMi's reference and proxy)",
}
"""Method groups; the report's sections tabulate groups, in registry order."""


@dataclass(frozen=True)
class Setting:
    """What a method's config may depend on: its experiment's sizes and budget, the HRLs, the
    proxy-size ``[model]``, and the run ids of the runs it needs (registry key → ids)."""

    sizes: Mapping[str, int]
    steps: int
    batch: int
    high: tuple[str, ...]
    proxy: Mapping[str, Any] | None = None  # None: not known here (a method that reads it fails loudly)
    needs: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def budget(self) -> float:
        """Training examples drawn in the run (steps × batch)."""
        return float(self.steps * self.batch)


class Finished(Protocol):
    """A finished run as the runner hands it to a method: its seed, folder and final record."""

    @property
    def seed(self) -> int: ...

    dir: Path
    record: dict[str, Any]


Sections = Callable[[Setting], dict[str, Any]]
Resolve = Callable[[dict[str, Any], Mapping[str, Sequence[Finished]]], None]


@dataclass(frozen=True)
class Selection:
    """A ``"select"`` run: the member of a method's needs with the best mean final ``split``
    ``metric`` over ``langs`` ("all" languages, or the "low"-resource ones), averaged over the
    seeds of the selection (``across_seeds``; else each seed picks its own). Never reads test."""

    split: Literal["dev"] = "dev"
    metric: str = "loss"
    higher: bool = False
    langs: Literal["all", "low"] = "all"
    across_seeds: bool = True

    def score(self, record: Mapping[str, Any]) -> float:
        """One run's selection score: the unweighted mean over the chosen languages."""
        from coolmix.mixture import resource_buckets

        sizes = {k: int(v) for k, v in record["sizes"].items()}
        b = resource_buckets(sizes)
        langs = [k for k in sizes if self.langs == "all" or b[k] == "low"]
        return float(np.mean([float(record[self.split][self.metric][k]) for k in langs]))

    def _score(self, run: Finished) -> float:
        try:
            return self.score(run.record)
        except (KeyError, TypeError, ValueError, AttributeError):
            why = f"has no final {self.split} {self.metric} per language to select on (--force retrains)"
            raise ConfigError(f"{Path(run.dir).as_posix()}/result.json", self.split, why) from None

    def choose(self, members: Mapping[str, Sequence[Finished]], seed: int) -> tuple[str, dict[str, Any]]:
        """(chosen member key, what the report prints: every member's per-seed scores and the rule)."""
        table = {k: {str(r.seed): self._score(r) for r in rs} for k, rs in members.items()}
        pool = {k: v if self.across_seeds else {str(seed): v[str(seed)]} for k, v in table.items()}
        means = {k: float(np.mean(list(v.values()))) for k, v in pool.items()}
        worst = -math.inf if self.higher else math.inf  # a diverged (NaN) member is never chosen
        rank = {k: v if math.isfinite(v) else worst for k, v in means.items()}
        chosen = (max if self.higher else min)(rank, key=lambda k: rank[k])  # ties: first in needs order
        langs = "all" if self.langs == "all" else "low-resource"
        used = sorted({s for v in pool.values() for s in v}, key=int)
        seeds = "averaged over seeds " + ", ".join(used) if self.across_seeds else "per seed"
        rule = f"best mean final {self.split} {self.metric} over {langs} languages, {seeds}"
        return chosen, {"chosen": chosen, "rule": rule, "scores": table, "means": means}


@dataclass(frozen=True)
class Method:
    """One balancing method.

    ``sections`` gives the config sections it merges over the base (``model`` replaces the base's
    whole); ``needs`` names registry entries it depends on (at its own seed, or at every seed of
    a ``select`` run with ``Selection.across_seeds``); ``resolve`` fills in its config from those
    finished runs; ``annotate`` adds fields to its finished run's record. ``run``/``role`` name
    its run folders (``<run>[-proxy]-s<seed>-<hash>``); ``curve`` draws it in the LM dev-curve figure;
    ``cost`` says what its compute includes (its needs' runs, `compute_parts`) in the cost table.
    """

    key: str
    label: str
    group: str
    color: str | None = None
    sections: Sections = lambda s: {}
    needs: tuple[str, ...] = ()
    resolve: Resolve | None = None
    annotate: Callable[[Mapping[str, Any]], dict[str, Any]] | None = None
    select: Selection | None = None
    run: str = ""
    role: Literal["main", "proxy"] = "main"
    curve: bool = False
    cost: str = ""

    def __post_init__(self) -> None:
        if not re.fullmatch(r"[a-z0-9_]+", self.key):  # run folders are <method>-s<seed>-<hash>
            raise ConfigError("method", self.key, "must be lower-case letters, digits and '_'")
        if self.group not in GROUPS:
            raise ConfigError(f"method {self.key}: group", self.group, f"must be one of {', '.join(GROUPS)}")

    @property
    def kind(self) -> Literal["train", "select"]:
        return "select" if self.select is not None else "train"

    @property
    def run_name(self) -> str:
        return self.run or self.key


# -- config sections, one small factory per family ------------------------------------------------


def _balance(sample: Any, **extra: Any) -> Sections:
    return lambda s: {"balance": {"sample": sample, **extra}}


def _switch(hot: float, cold: float, at: float) -> Sections:
    return _balance({"kind": "cooldown", "hot": hot, "cold": cold, "at": at})


def _clip(inner: Sections) -> Sections:
    return lambda s: {**inner(s), "optim": {"clip": CLIP_NORM}}


def _dense(phases: int) -> Sections:
    taus = [5.0 * (1.0 / 5.0) ** (i / (phases - 1)) for i in range(phases)]
    starts = [0, *[i / phases for i in range(1, phases)]]
    return _balance({"kind": "stages", "starts": starts, "dists": taus})


def unimax_epochs(sizes: Mapping[str, float], budget: float, tau: float = 5.0) -> float:
    """UniMax's cap N from the budget: the epochs of the scarcest language under τ (1 decimal).

    N = budget · p_τ(j) / n_j for j the smallest domain (see the module docstring for why).

    >>> unimax_epochs({"en": 1000, "sw": 10}, budget=1000)
    28.5
    """
    small = min(sizes, key=lambda k: sizes[k])
    p = temperature_probs(dict(sizes), tau=tau)[small]
    return max(1.0, round(budget * p / float(sizes[small]), 1))


def _unimax(cap: float | None = None, static: bool = False) -> Sections:
    """UniMax at cap ``cap`` epochs (None: `unimax_epochs` of the budget), dynamic or static."""

    def sections(s: Setting) -> dict[str, Any]:
        n = unimax_epochs(s.sizes, s.budget) if cap is None else float(cap)
        if static:
            return {"balance": {"sample": {"kind": "unimax", "budget": s.budget, "max_epochs": n}}}
        return {"balance": {"sample": {"kind": "unimax_dynamic", "max_epochs": n, "after": 1.0}}}

    return sections


def _order_matters(s: Setting) -> dict[str, Any]:
    return {"balance": {"sample": {"kind": "order_matters", "high": list(s.high), "at": 0.5, "then": 5.0}}}


def _adaptive(s: Setting) -> dict[str, Any]:
    low = [k for k in s.sizes if k not in s.high]
    return {
        "balance": {"sample": {"kind": "adaptive", "hot": 5.0, "cold": 1.0, "on": "cooldown"}},
        "adaptive": {
            "domains": low,
            "mode": "any",
            "margin": 0.005,
            "patience": 2,
            "min_evals": 3,
            "smoothing": 0.3,
        },
    }


# -- DoReMi's chain: reference → proxy → main, declared ------------------------------------------


def _proxy_model(s: Setting) -> dict[str, Any]:
    if s.proxy is None:
        raise ConfigError("model", None, "DoReMi's reference and proxy need the experiment's proxy model")
    return dict(s.proxy)


def _doremi_ref(s: Setting) -> dict[str, Any]:
    return {"balance": {"sample": DOREMI_REFERENCE_TAU}, "model": _proxy_model(s)}


def _doremi_proxy(s: Setting) -> dict[str, Any]:
    return {
        "balance": {"sample": "inf"},  # uniform: every domain in every batch
        "doremi": {"reference": s.needs["doremi_ref"][0], "eta": 1.0, "smoothing": 1e-3},
        "model": _proxy_model(s),
    }


def _proxy_reads_reference(cfg: dict[str, Any], done: Mapping[str, Sequence[Finished]]) -> None:
    cfg["doremi"]["reference"] = str(done["doremi_ref"][0].dir)


def _main_reads_weights(cfg: dict[str, Any], done: Mapping[str, Sequence[Finished]]) -> None:
    rec = done["doremi_proxy"][0].record
    weights = rec.get("doremi_weights") or rec["doremi"]["average"]
    cfg["balance"] = {"sample": {"kind": "explicit", "weights": weights}}


UNIMAX_CAPS = (1, 2, 3, 4, 5)
"""UniMax's own recommended caps (epochs, Chung et al. 2023), the grid beside the budget-derived N."""
UNIMAX_DEV = Selection(split="dev", metric="loss", langs="all", across_seeds=True)
"""How ``unimax_dev`` picks N: the lowest final dev loss averaged over **all** languages, each
weighted equally (UniMax's stated aim is uniform coverage of every language, not the tail alone),
and over seeds (one N for every seed, so no seed's choice rides on its own noise); test is never
read."""

METHODS: dict[str, Method] = {
    m.key: m
    for m in [
        # registry order is report order: each section tabulates its groups in this order
        Method("tau1", "τ=1 (proportional)", "static", "#1f77b4", _balance(1.0), curve=True),
        Method("tau2", "TS τ=2", "static", "#9467bd", _balance(2.0)),
        Method("scal2", "Scalarization τ=2", "scalarization", "#9467bd", _balance(1.0, target=2.0)),
        Method("tau3", "TS τ=3", "static", "#8c564b", _balance(3.0)),
        Method("scal3", "Scalarization τ=3", "scalarization", "#8c564b", _balance(1.0, target=3.0)),
        Method("tau5", "τ=5", "static", "#d62728", _balance(5.0), curve=True),
        Method("scal5", "Scalarization τ=5", "scalarization", "#d62728", _balance(1.0, target=5.0)),
        Method("tau5_clip", "τ=5, clip 1.0", "clipping", None, _clip(_balance(5.0))),
        Method(
            "scal5_clip", "Scalarization τ=5, clip 1.0", "clipping", None, _clip(_balance(1.0, target=5.0))
        ),
        Method("tau100", "τ=100 (≈uniform)", "static", "#7f7f7f", _balance(100.0), curve=True),
        Method("unimax", "UniMax (dynamic)", "baseline", "#bcbd22", _unimax()),
        Method(
            "unimax_dev",
            "UniMax (dynamic, N chosen on dev)",
            "baseline",
            "#dbdb8d",
            needs=(*(f"unimax_n{n}" for n in UNIMAX_CAPS), "unimax"),
            select=UNIMAX_DEV,
            cost="every grid run",
        ),
        Method("unimax_static", "UniMax (static)", "variant", None, _unimax(static=True)),
        Method("order_matters", "Order Matters", "baseline", "#17becf", _order_matters),
        Method(
            "cooldown", "Cooldown (5→1 at 50%)", "proposed", "#2ca02c", _switch(5.0, 1.0, 0.5), curve=True
        ),
        Method(
            "doremi",
            "DoReMi (proxy)",
            "baseline",
            "#e377c2",
            needs=("doremi_proxy",),
            resolve=_main_reads_weights,
            annotate=lambda cfg: {"doremi_weights": cfg["balance"]["sample"]["weights"]},
            curve=True,
            cost="main + reference + proxy",
        ),
        Method(
            "adaptive",
            "Adaptive Cooldown",
            "proposed",
            "#ff7f0e",
            _adaptive,
            curve=True,
        ),
        Method("increasing", "1→5 at 50%", "ablation", "#8c564b", _switch(1.0, 5.0, 0.5)),
        Method("dense1", "Dense 5→1 (5 phases)", "ablation", "#9467bd", _dense(5)),
        Method("dense2", "Dense 5→1 (10 phases)", "ablation", "#17becf", _dense(10)),
        Method(
            "late_upsample",
            "Late upsampling (1, then 5 for the last 20%)",
            "beyond",
            "#393b79",
            _switch(1.0, 5.0, LATE_AT),
        ),
        Method(
            "tau_warmup",
            "τ warm-up (linear 1→5)",
            "beyond",
            "#843c39",
            _balance({"kind": "anneal", "start": 1.0, "end": 5.0, "shape": "linear"}),
        ),
        Method("doremi_ref", "DoReMi reference (τ=3.33, proxy size)", "internal", None, _doremi_ref),
        Method(
            "doremi_proxy",
            "DoReMi proxy (Group DRO, proxy size)",
            "internal",
            None,
            _doremi_proxy,
            needs=("doremi_ref",),
            resolve=_proxy_reads_reference,
            run="doremi",
            role="proxy",
        ),
        *(Method(f"unimax_n{n}", f"UniMax (dynamic, N={n})", "grid", None, _unimax(n)) for n in UNIMAX_CAPS),
    ]
}
"""Every method, in report order. Adding a method is one entry here."""


TABLE = ("static", "baseline", "proposed")
"""The groups of the Table 3/4 rows."""


def in_groups(*groups: str) -> tuple[str, ...]:
    """The keys of the methods in ``groups``, in registry order."""
    return tuple(k for k, m in METHODS.items() if m.group in groups)


def tabulated() -> tuple[str, ...]:
    """Every method a results table shows: the Table 3/4 rows, the ablations, then the schedules
    beyond the paper (exposure and cost tables)."""
    return (*in_groups(*TABLE), *in_groups("ablation"), *in_groups("beyond"))


def compute_parts(method: str) -> tuple[tuple[str, str], ...]:
    """(run name, role) of every run a method's compute includes besides its own: its needs,
    transitively, depth first (DoReMi: its proxy, then its reference)."""
    out: list[tuple[str, str]] = []

    def walk(key: str) -> None:
        for d in METHODS[key].needs:
            m = METHODS[d]
            if (m.run_name, m.role) not in out:
                out.append((m.run_name, m.role))
                walk(d)

    walk(method)
    return tuple(out)


def color(method: str) -> str | None:
    """A method's plot colour (None: matplotlib's next)."""
    m = METHODS.get(method)
    return m.color if m else None


def method_sections(
    method: str, sizes: Mapping[str, int], total_steps: int, batch_size: int, high: tuple[str, ...]
) -> dict[str, Any]:
    """Config sections ``method`` sets over its experiment's base config (merged per section)."""
    return METHODS[method].sections(Setting(sizes, total_steps, batch_size, high))


def balance_for(
    method: str, sizes: Mapping[str, int], total_steps: int, batch_size: int, high: tuple[str, ...]
) -> dict[str, Any]:
    """The ``[balance]`` table of ``method`` on a mixture."""
    return method_sections(method, sizes, total_steps, batch_size, high)["balance"]


def high_resource(sizes: Mapping[str, int]) -> tuple[str, ...]:
    """Languages that are not low-resource by `resource_buckets` (≥ 40% of the largest): the set
    Order Matters trains on first."""
    from coolmix.mixture import resource_buckets

    b = resource_buckets({k: int(v) for k, v in sizes.items()})
    return tuple(k for k in sizes if b[k] != "low")
