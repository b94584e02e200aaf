"""Declarative experiments (corpus × methods × seeds) and the ``quick`` / ``full`` presets.

Each experiment is a base trainer config plus a list of methods; the runner expands it into
runs, one per (method, seed). ``quick`` fits 15 minutes on 2 cores with 2 seeds on the core
comparisons; the full evidence comes in parts that each fit 2.5 hours here: ``full-lm``
(convergence + LM, 3 seeds, 5 on the comparisons that decide E5/E8) and ``full-mt``;
``full`` is both. Corpus, languages and sizes come from the base config, so any
experiment runs on any corpus the data layer supports (override with ``--set``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from coolmix.config import apply_overrides
from coolmix.errors import ConfigError

__all__ = ["PRESETS", "Experiment", "Preset", "preset"]


@dataclass(frozen=True)
class Experiment:
    """One table or figure of the paper: a base config, the methods compared and seeds (the claims
    it feeds are judged by `claims.REGISTRY` from whatever runs exist).

    ``method_seeds`` gives some methods other seeds than ``seeds`` (more seeds on the
    comparisons that decide a claim); ``proxy_model`` is the ``[model]`` of DoReMi's reference
    and proxy (None: `half_width` of the main model, so overrides of the main model carry over;
    smaller than the main model either way, as in Xie et al.).
    """

    key: str
    title: str
    base: Mapping[str, Any]
    methods: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    primary: str = "loss"  # headline metric: "loss" (lower is better) or "chrf" (higher)
    method_seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    proxy_model: Mapping[str, Any] | None = None

    def seeds_for(self, method: str) -> tuple[int, ...]:
        return tuple(self.method_seeds.get(method, self.seeds))

    def proxy(self) -> dict[str, Any]:
        """DoReMi's reference/proxy ``[model]``."""
        return dict(self.proxy_model) if self.proxy_model else half_width(self.base["model"])

    @property
    def all_seeds(self) -> tuple[int, ...]:
        return tuple(sorted({s for m in self.methods for s in self.seeds_for(m)}))


@dataclass(frozen=True)
class Preset:
    """A set of experiments and the size of the theory measurements."""

    name: str
    experiments: tuple[Experiment, ...]
    workers: int = 2
    variance_examples: int = 16
    theorem1_steps: int = 30
    notes: tuple[str, ...] = field(default_factory=tuple)


# The paper's mixtures (paper.md §1.5), for the F(τ) checks next to our own.
PAPER_MIXTURES: dict[str, dict[str, float]] = {
    "mC4 (paper)": {"en": 2733, "it": 162, "zh": 39, "sw": 1},
    "OPUS-100 subset (paper)": {
        "es": 1e6,
        "fa": 1e6,
        "ga": 294e3,
        "gl": 519e3,
        "ha": 102e3,
        "hi": 538e3,
        "it": 1e6,
        "kk": 83e3,
        "ug": 76e3,
    },
    "En-{Cs,Ro} (paper)": {"cs": 56e6, "ro": 0.6e6},
}

# -- building blocks -----------------------------------------------------------------------------

LM_MODEL = {"d_model": 128, "n_layer": 2, "n_head": 4, "d_ff": 384, "max_len": 64, "dropout": 0.0}
MT_MODEL = {"d_model": 128, "n_enc": 2, "n_dec": 2, "n_head": 4, "d_ff": 384, "max_len": 48, "dropout": 0.1}


def half_width(model: Mapping[str, Any]) -> dict[str, Any]:
    """The model at half the width (d_model, d_ff and heads halved; depth kept): DoReMi's proxy
    size. Xie et al. use 280M proxies for an 8B main model; the author's fork halves the depth.

    >>> half_width({"d_model": 128, "n_head": 4, "d_ff": 384, "n_layer": 2})
    {'d_model': 64, 'n_head': 2, 'd_ff': 192, 'n_layer': 2}
    """
    from coolmix.validate import check_int

    out = dict(model)
    heads = max(1, check_int("model.n_head", model.get("n_head", 2), lo=1) // 2)
    width = check_int("model.d_model", model.get("d_model", 128), lo=1)
    out["d_model"] = max(heads * 4, width // 2 // heads * heads)
    out["n_head"] = heads
    if "d_ff" in model:
        out["d_ff"] = max(4, check_int("model.d_ff", model["d_ff"], lo=1) // 2)
    return out


FINAL_LR = 0.05
"""Every run anneals: cosine from the peak to 5% of it, so end-of-training numbers are converged."""


def _optim(steps: int, **extra: Any) -> dict[str, Any]:
    return {
        "lr": 2e-3,
        "warmup": max(steps // 20, 10),
        "schedule": "cosine",
        "final_lr": FINAL_LR,
        **extra,
    }


def _lm(
    data: Mapping[str, Any], steps: int, eval_every: int, vocab: int = 2000, clip: float = 1.0
) -> dict[str, Any]:
    return {
        "data": dict(data),
        "tokenizer": {"vocab_size": vocab, "tau": 5.0},
        "model": dict(LM_MODEL),
        "task": {"seq_len": 48},
        "optim": _optim(steps, clip=clip),
        "run": {
            "total_steps": steps,
            "batch_size": 32,
            "eval_every": eval_every,
            "eval_batches": 4,
            "threads": 1,
            "keep": 1,
        },
    }


def _mt(
    data: Mapping[str, Any], steps: int, eval_every: int, decode: int, batch: int, vocab: int = 3000
) -> dict[str, Any]:
    return {
        "data": dict(data),
        "tokenizer": {"vocab_size": vocab, "tau": 5.0},
        "model": dict(MT_MODEL),
        "task": {"src_len": 32, "tgt_len": 32},
        "optim": _optim(steps, label_smoothing=0.1),
        "run": {
            "total_steps": steps,
            "batch_size": batch,
            "eval_every": eval_every,
            "eval_batches": 2,
            "max_decode": decode,
            "threads": 1,
            "keep": 1,
        },
    }


# Bible LM, the paper's mC4 languages. Sizes follow the paper's *epoch profile*, not its raw
# ratio (which would leave Swahili a handful of verses): at τ=5 the scarcest language is
# repeated tens of times while English stays below one epoch (paper's mC4 run at τ=5: sw ≈ 5,
# zh 0.26, it 0.08, en 0.01 epochs). `coolmix plan` prints the table; the report prints the
# realised epochs of every run. dev/test are the same verses in every language.
LM4 = {"name": "bible", "langs": ["en", "it", "zh", "sw"], "dev_size": 300, "test_size": 300}
LM4_QUICK = {**LM4, "train_sizes": {"en": 24000, "it": 3000, "zh": 800, "sw": 60}}
LM4_FULL = {**LM4, "train_sizes": {"en": 28000, "it": 3500, "zh": 930, "sw": 70}}
# Bilingual heavy imbalance (Fig. 4): French vs Romanian verses at 100:1, like WMT En-Fr vs
# En-Ro; at τ=5 ro passes its overfitting onset well within the run, fr stays below one epoch.
BI = {"name": "bible", "langs": ["fr", "ro"], "dev_size": 300, "test_size": 300}
BI_QUICK = {**BI, "train_sizes": {"fr": 12000, "ro": 120}}
BI_FULL = {**BI, "train_sizes": {"fr": 24000, "ro": 240}}
# MT one-to-many (Table 3): Debian gettext en→xx, natural imbalance (es 30k … ga 1.9k pairs).
# Four languages instead of nine, so the largest gets enough steps to learn (chrF gate).
MT4 = {"name": "gettext", "langs": ["es", "hi", "fa", "ga"], "dev_size": 200, "test_size": 200}
# MT where Cooldown's premise holds (issue 19): ga cut to 250 training pairs, so τ=5 repeats it
# ≈ 140 times in 4,000 steps × 64 (full-mt's ga, 1,879 pairs at ≈ 31 epochs, never overfit); 500
# test pairs per language (gettext's ga has 2,277 in all), so the test set resolves smaller gaps
MT4_OVERFIT = {**MT4, "train_sizes": {"ga": 250}, "test_size": 500}

TABLE_METHODS = ("tau1", "tau5", "tau100", "unimax", "order_matters", "cooldown", "doremi", "adaptive")
ABLATION_METHODS = ("increasing", "dense1", "dense2")
BEYOND_METHODS = ("late_upsample", "tau_warmup")
CONVERGENCE_METHODS = ("tau1", "tau2", "scal2", "tau3", "scal3", "tau5", "scal5", "tau5_clip", "scal5_clip")
# quick keeps the τ=2 and τ=5 pairs (E1's "gap grows with τ" needs two τ) and τ=1 (E4)
QUICK_CONVERGENCE = ("tau1", "tau2", "scal2", "tau5", "scal5")
LR_ABLATION_METHODS = ("tau1", "tau5", "tau100", "cooldown", "increasing", "tau_warmup", "late_upsample")
QUICK_LM = ("tau1", "tau5", "tau100", "cooldown", "doremi", "increasing")


def _convergence(
    data: Mapping[str, Any],
    steps: int,
    seeds: tuple[int, ...],
    methods: tuple[str, ...] = CONVERGENCE_METHODS,
) -> Experiment:
    return Experiment(
        "convergence",
        "Sampling vs scalarization at equal τ (Fig. 4 analogue; Bible fr:ro = 100:1), clipping off "
        "unless the method says clip",
        _lm(data, steps, steps // 16, clip=0.0),
        methods,
        seeds,
    )


def _lm_experiment(
    data: Mapping[str, Any],
    steps: int,
    methods: tuple[str, ...],
    seeds: tuple[int, ...],
    method_seeds: Mapping[str, tuple[int, ...]] | None = None,
) -> Experiment:
    return Experiment(
        "lm",
        "Multilingual LM (Table 4 analogue; Bible en/it/zh/sw), with the schedule ablations (Figs. 5–7) "
        "and the schedules that point the other way (late upsampling, τ warm-up)",
        _lm(data, steps, steps // 12),
        methods,
        seeds,
        method_seeds=dict(method_seeds or {}),
    )


def _mt_experiment(
    steps: int,
    batch: int,
    methods: tuple[str, ...],
    seeds: tuple[int, ...],
    decode: int,
    data: Mapping[str, Any] = MT4,
    evals: int = 6,
    **optim: Any,
) -> Experiment:
    base = _mt(data, steps, steps // evals, decode=decode, batch=batch)
    return Experiment(
        "mt",
        "Multilingual MT (Table 3 analogue; gettext en→es/hi/fa/ga)",
        {**base, "optim": {**base["optim"], **optim}} if optim else base,
        methods,
        seeds,
        primary="chrf",
    )


FIVE = (0, 1, 2, 3, 4)
# the comparisons that decide E5 and E8 (Cooldown vs τ=1, the best static τ and DoReMi) get 5 seeds
DECISIVE = {m: FIVE for m in ("tau1", "tau5", "tau100", "cooldown", "doremi")}

_FULL_LM = (
    _convergence(BI_FULL, 800, (0, 1, 2)),
    _lm_experiment(
        LM4_FULL,
        800,
        (*TABLE_METHODS, "unimax_static", *ABLATION_METHODS, *BEYOND_METHODS),
        (0, 1, 2),
        DECISIVE,
    ),
)
# MT sized on the pilot (docs/results/RUNS.md): at 2400 steps × 64 pairs τ=1 ends at chrF 19.1
# on es, just below the gate of 20; at 4800 steps it reaches 26.5 (dev) / 27.4 (test). The three
# methods that decide E5 (τ=1 first: it decides the gate), ≈ 36 min a run on one core here.
_FULL_MT = (_mt_experiment(4800, 64, ("tau1", "tau5", "cooldown"), (0, 1, 2), decode=100),)

SCALE_METHODS = ("tau1", "tau5", "tau100", "cooldown")
"""The methods behind E5's retained penalty and E8's it/zh gap, run at every model size."""


def _part(name: str, experiments: tuple[Experiment, ...], *notes: str) -> Preset:
    """A full part: 2 workers, the theory at full size (48 variance examples, 20 Theorem-1 steps)."""
    return Preset(name, experiments, workers=2, variance_examples=48, theorem1_steps=20, notes=notes)


def _sized(
    name: str, model: Mapping[str, Any], methods: tuple[str, ...], lr: float | None = None, note: str = ""
) -> Preset:
    """full-lm's LM experiment (same data, steps, batch) with another ``[model]`` (and peak LR)."""
    exp = _lm_experiment(LM4_FULL, 800, methods, (0, 1, 2))
    base = {**exp.base, "model": {**exp.base["model"], **model}}
    if lr is not None:
        base["optim"] = {**base["optim"], "lr": lr}
    return _part(name, (replace(exp, base=base),), *((note,) if note else ()))


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick",
        (
            # the ≤ 15 min budget (measured, docs/results/RUNS.md) holds the comparisons that
            # decide E1–E6 and E8 at 2 seeds; the τ=3 pair, the clipping confound, UniMax, Order
            # Matters, adaptive Cooldown, the dense schedules (E7) and E9's schedules run in full-lm
            _convergence(BI_QUICK, 300, (0, 1), QUICK_CONVERGENCE),
            _lm_experiment(LM4_QUICK, 300, QUICK_LM, (0, 1)),
            # a pipeline check (one seed, below the chrF gate): MT that learns needs `full-mt`
            _mt_experiment(150, 32, ("tau1",), (0,), decode=60),
        ),
        workers=2,
        variance_examples=24,
        theorem1_steps=20,
        notes=("2 seeds on the convergence and LM comparisons; MT is one seed and a pipeline check",),
    ),
    "full-lm": _part("full-lm", _FULL_LM),
    # the comparisons that decide E5/E8, exactly as in full-lm (same configs, so the same cached
    # runs): a part that fits a shorter window; run it into full-lm's directory to share runs
    "full-lm-core": _part(
        "full-lm-core",
        (_lm_experiment(LM4_FULL, 800, ("tau1", "tau5", "tau100", "cooldown", "doremi"), FIVE),),
        "the E5/E8-deciding subset of full-lm; the other claims are not run",
    ),
    # the LR-schedule ablation (issue 19): the Table-4 core × 3 seeds, with full-lm's configs, so
    # under the default cosine it shares full-lm's runs; run it once per `--set optim.schedule=`
    # (inverse_sqrt, constant) into its own folder and compare the reports' verdicts
    "lr-ablation": _part(
        "lr-ablation",
        (_lm_experiment(LM4_FULL, 800, LR_ABLATION_METHODS, (0, 1, 2)),),
        "the Table-4 core under one LR schedule (`--set optim.schedule=`); E7/E8's DoReMi not run",
    ),
    # E2 to convergence (issue 19): full-lm's τ=2 pair at 10× its steps, the budget E2's plateau test
    # asked for on full-lm (≈ 7,200 steps); ≈ 18 min a run here, ≈ 1 h on 2 workers
    "convergence-long": _part(
        "convergence-long",
        (_convergence(BI_FULL, 8000, (0, 1, 2), ("tau2", "scal2")),),
        "E2 only: the τ=2 sampling/scalarization pair at 8,000 steps; E1/E4 need τ=5 and τ=1",
    ),
    # the scale trend (issue 19): E5's retained penalty and E8's it/zh gap at ¼× and 4× the LM's
    # parameters (1× is full-lm's runs: the same configs); compare with `coolmix ablation`
    "scale-quarter": _sized(
        "scale-quarter",
        {"d_model": 64, "n_head": 2, "d_ff": 192},
        SCALE_METHODS,
        note="half the LM's width: ¼× its non-embedding parameters",
    ),
    "scale-4x": _sized(
        "scale-4x",
        {"d_model": 256, "n_head": 4, "d_ff": 768},
        SCALE_METHODS,
        note="2× the LM's width: 4× its non-embedding parameters",
    ),
    # GPU-ready (scripts/gpu_table4.sh): the Table-4 core at ≈20M and ≈85M parameters, 3 seeds each
    "gpu-20m": _sized(
        "gpu-20m",
        {"d_model": 512, "n_layer": 6, "n_head": 8, "d_ff": 2048},
        LR_ABLATION_METHODS,
        lr=1e-3,
        note="≈20M parameters; run on a GPU (`--set run.device=cuda`)",
    ),
    "gpu-85m": _sized(
        "gpu-85m",
        {"d_model": 768, "n_layer": 12, "n_head": 12, "d_ff": 3072},
        LR_ABLATION_METHODS,
        lr=6e-4,
        note="≈85M parameters; run on a GPU (`--set run.device=cuda`)",
    ),
    # UniMax's cap chosen on dev (issue 19): `unimax_dev` needs the cap grid N = 1…5 plus full-lm's
    # budget-derived N (the `unimax` runs), each × 3 seeds; with full-lm's data, steps and the
    # statics and Cooldown it is compared with (the same configs: run it into full-lm's folder and
    # only the 15 new grid runs train, ≈ 2 min each here)
    "unimax-grid": _part(
        "unimax-grid",
        (_lm_experiment(LM4_FULL, 800, ("tau1", "tau5", "tau100", "cooldown", "unimax_dev"), (0, 1, 2)),),
        "UniMax with N chosen on dev from N = 1…5 and the budget-derived N; E8 needs DoReMi (not run)",
    ),
    "full-mt": _part("full-mt", _FULL_MT),
    # MT with the premise (issue 19): τ=1, τ=5 and Cooldown × 3 seeds under the paper's MT schedule
    # (inverse-sqrt after warm-up), dev every 400 steps for the overfitting detector; 29–35 min a run
    # with 3 runs sharing 2 cores: ≈ 1 h 50 min for the 9 with `--workers 3` (measured 2026-12-06)
    "mt-overfit": _part(
        "mt-overfit",
        (
            _mt_experiment(
                4000, 64, ("tau1", "tau5", "cooldown"), (0, 1, 2), decode=500, data=MT4_OVERFIT,
                evals=10, schedule="inverse_sqrt",
            ),
        ),
        "MT where τ=5 should overfit ga (250 training pairs), inverse-sqrt LR, 500 test pairs",
    ),
    "full": _part("full", (*_FULL_LM, *_FULL_MT)),
}


def preset(
    name: str, overrides: tuple[str, ...] = (), only: tuple[str, ...] = (), seeds: tuple[int, ...] = ()
) -> Preset:
    """A preset with ``key.path=value`` overrides applied to every experiment's base config
    (and, if given, other ``seeds`` for every experiment)."""
    if name not in PRESETS:
        raise ConfigError("preset", name, f"must be one of {', '.join(PRESETS)}")
    p = PRESETS[name]
    exps = p.experiments
    if only:
        unknown = [k for k in only if k not in {e.key for e in exps}]
        if unknown:
            raise ConfigError(
                "only", unknown[0], f"unknown experiment; known: {', '.join(e.key for e in exps)}"
            )
        exps = tuple(e for e in exps if e.key in only)
    if seeds:
        if any(isinstance(x, bool) or not isinstance(x, int) or x < 0 for x in seeds):
            raise ConfigError("seeds", list(seeds), "must be integers >= 0")
        exps = tuple(replace(e, seeds=tuple(seeds), method_seeds={}) for e in exps)
    if overrides:
        exps = tuple(replace(e, base=apply_overrides(e.base, overrides)) for e in exps)
    return Preset(p.name, exps, p.workers, p.variance_examples, p.theorem1_steps, p.notes)
