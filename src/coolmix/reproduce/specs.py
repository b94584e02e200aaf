"""Declarative experiments (corpus × methods × seeds) and the ``quick`` / ``full`` presets.

Each experiment is a base trainer config plus a list of methods; the runner expands it into
runs, one per (method, seed). Corpus, languages and sizes come from the base config, so any
experiment runs on any corpus the data layer supports (override with ``--set``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from coolmix.config import apply_overrides
from coolmix.errors import ConfigError

__all__ = ["PRESETS", "Experiment", "Preset", "preset"]


@dataclass(frozen=True)
class Experiment:
    """One table or figure of the paper: a base config, the methods compared, seeds, claims."""

    key: str
    title: str
    base: Mapping[str, Any]
    methods: tuple[str, ...]
    seeds: tuple[int, ...] = (0,)
    claims: tuple[str, ...] = ()
    primary: str = "loss"  # headline metric: "loss" (lower is better) or "chrf" (higher)


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


def _lm(data: Mapping[str, Any], steps: int, eval_every: int, vocab: int = 2000) -> dict[str, Any]:
    return {
        "data": dict(data),
        "tokenizer": {"vocab_size": vocab, "tau": 5.0},
        "model": dict(LM_MODEL),
        "task": {"seq_len": 48},
        "optim": {"lr": 2e-3, "warmup": max(steps // 20, 10), "schedule": "inverse_sqrt"},
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
    data: Mapping[str, Any], steps: int, eval_every: int, decode: int, vocab: int = 3000
) -> dict[str, Any]:
    return {
        "data": dict(data),
        "tokenizer": {"vocab_size": vocab, "tau": 5.0},
        "model": dict(MT_MODEL),
        "task": {"src_len": 32, "tgt_len": 32},
        "optim": {
            "lr": 2e-3,
            "warmup": max(steps // 20, 10),
            "schedule": "inverse_sqrt",
            "label_smoothing": 0.1,
        },
        "run": {
            "total_steps": steps,
            "batch_size": 32,
            "eval_every": eval_every,
            "eval_batches": 2,
            "max_decode": decode,
            "threads": 1,
            "keep": 1,
        },
    }


# Bible LM, the paper's mC4 languages with an imposed heavy imbalance (2733:162:39:1 capped at
# 400:1 so Swahili keeps a few dozen verses); dev/test are the same verses in every language.
LM4 = {"name": "bible", "langs": ["en", "it", "zh", "sw"], "dev_size": 300, "test_size": 300}
LM4_QUICK = {**LM4, "train_sizes": {"en": 12000, "it": 710, "zh": 171, "sw": 30}}
LM4_FULL = {**LM4, "train_sizes": {"en": 24000, "it": 1422, "zh": 342, "sw": 60}}
# Bilingual heavy imbalance (Fig. 4): French vs Romanian verses at 70:1, like WMT En-Fr vs En-Ro.
BI = {"name": "bible", "langs": ["fr", "ro"], "dev_size": 300, "test_size": 300}
BI_QUICK = {**BI, "train_sizes": {"fr": 8400, "ro": 120}}
BI_FULL = {**BI, "train_sizes": {"fr": 21000, "ro": 300}}
# MT one-to-many (Table 3): Debian gettext en→xx, natural imbalance; am stands in for ha.
MT9 = {
    "name": "gettext",
    "langs": ["es", "it", "gl", "hi", "fa", "kk", "ug", "ga", "am"],
    "dev_size": 200,
    "test_size": 200,
}

TABLE_METHODS = ("tau1", "tau5", "tau100", "unimax", "order_matters", "cooldown", "doremi", "adaptive")
ABLATION_METHODS = ("increasing", "dense1", "dense2")


def _experiments(
    steps_lm: int, steps_bi: int, steps_mt: int, seeds: tuple[int, ...], full: bool
) -> tuple[Experiment, ...]:
    lm4, bi = (LM4_FULL, BI_FULL) if full else (LM4_QUICK, BI_QUICK)
    ev_lm, ev_bi, ev_mt = steps_lm // 12, steps_bi // 16, steps_mt // 6
    return (
        Experiment(
            "convergence",
            "Sampling vs scalarization at equal τ (Fig. 4 analogue; Bible fr:ro = 70:1)",
            _lm(bi, steps_bi, ev_bi),
            ("tau1", "tau2", "scal2", "tau3", "scal3", "tau5", "scal5"),
            seeds,
            ("E1", "E2", "E4"),
        ),
        Experiment(
            "lm",
            "Multilingual LM (Table 4 analogue; Bible en/it/zh/sw), with the schedule ablations (Figs. 5–7)",
            _lm(lm4, steps_lm, ev_lm),
            (*TABLE_METHODS, *ABLATION_METHODS),
            seeds,
            ("E5", "E6", "E7", "E8"),
        ),
        Experiment(
            "mt",
            "Multilingual MT (Table 3 analogue; gettext en→9)",
            _mt(MT9, steps_mt, ev_mt, decode=100 if full else 60),
            TABLE_METHODS,
            seeds,
            ("E5",),
            primary="chrf",
        ),
    )


PRESETS: dict[str, Preset] = {
    "quick": Preset(
        "quick",
        _experiments(steps_lm=360, steps_bi=320, steps_mt=300, seeds=(0,), full=False),
        workers=2,
        variance_examples=12,
        theorem1_steps=20,
        notes=("single seed: differences below a fixed tolerance are ties, no spread is available",),
    ),
    "full": Preset(
        "full",
        _experiments(steps_lm=3000, steps_bi=2400, steps_mt=2400, seeds=(0, 1, 2), full=True),
        workers=2,
        variance_examples=32,
        theorem1_steps=50,
    ),
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
        exps = tuple(
            Experiment(e.key, e.title, e.base, e.methods, tuple(seeds), e.claims, e.primary) for e in exps
        )
    if overrides:
        exps = tuple(
            Experiment(
                e.key, e.title, apply_overrides(e.base, overrides), e.methods, e.seeds, e.claims, e.primary
            )
            for e in exps
        )
    return Preset(p.name, exps, p.workers, p.variance_examples, p.theorem1_steps, p.notes)
