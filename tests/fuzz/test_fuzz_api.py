"""Hostile fuzz of the public API: a finite, normalised result or one ConfigError, never anything else.

Covers the distributions, weights, variance inflation, UniMax, loss weights, ``weighted_loss``
(numpy), every schedule's ``probs_at``, and `MixtureSampler` construction, ``batch`` and
``load_state_dict`` with hostile states. Outcomes are classified by `fuzz_harness`.
"""

from __future__ import annotations

import math

import numpy as np
from fuzz_harness import check_nonneg, check_probs, fuzzer, run_api
from fuzz_strategies import edge_floats, good_sizes, hostile, numbers, positive, sizes, taus
from hypothesis import strategies as st

import coolmix as cm

# -- distributions and weights ---------------------------------------------------------------------

dist_case = st.tuples(
    st.sampled_from(["temperature", "alpha", "proportional", "uniform", "unimax", "unimax_probs"]),
    sizes,
    taus,
    st.one_of(positive, hostile),
)


@fuzzer("api.distributions", dist_case, fast=80, slow=400)
def _distributions(case):
    kind, s, tau, extra = case
    if kind == "temperature":
        run_api(kind, cm.temperature_probs, s, tau=tau, check=check_probs)
    elif kind == "alpha":
        run_api(kind, cm.temperature_probs, s, alpha=tau, check=check_probs)
    elif kind == "proportional":
        run_api(kind, cm.proportional_probs, s, check=check_probs)
    elif kind == "uniform":
        run_api(kind, cm.uniform_probs, s, check=check_probs)
    elif kind == "unimax":
        run_api(kind, cm.unimax, s, budget=extra, max_epochs=tau, check=lambda a: check_probs(a.probs))
    else:
        run_api(kind, cm.unimax_probs, s, budget=extra, max_epochs=tau, check=check_probs)


test_distributions_fast, test_distributions_slow = _distributions

weight_case = st.tuples(st.sampled_from(["scalarization", "inflation", "loss_weights"]), sizes, taus, taus)


def _inflation_at_least_one(f: float) -> str | None:
    return None if f >= 1 - 1e-9 else f"F = {f!r} < 1"


@fuzzer("api.weights", weight_case, fast=60, slow=300)
def _weights(case):
    kind, s, tau, sample = case
    if kind == "scalarization":
        run_api(kind, cm.scalarization_weights, s, tau, sample, check=check_nonneg)
    elif kind == "inflation":
        run_api(kind, cm.variance_inflation, s, tau, check=_inflation_at_least_one)
    else:
        run_api(kind, cm.loss_weights, s, target=tau, sample=sample, check=check_nonneg)


test_weights_fast, test_weights_slow = _weights

# -- weighted_loss (numpy) ----------------------------------------------------------------------------

loss_case = st.tuples(
    st.integers(0, 5),  # rows
    st.sampled_from([None, 1, 3]),  # tokens per row (None: 1-D losses)
    st.lists(st.integers(-2, 4), min_size=0, max_size=5),  # domain ids (may be out of [0, 3))
    st.lists(st.one_of(st.floats(0, 10), edge_floats), min_size=3, max_size=3),  # weights
    st.sampled_from(["mean", "self_normalized", "sum", "bogus", None]),
    st.sampled_from([None, "ones", "zeros", "random"]),
    st.integers(0, 2**16),
)


def _expected_loss(loss, ids, w, reduction, n_tok):
    """The documented reductions, written out independently (per token when there are tokens)."""
    wb = w[ids]
    if loss.ndim == 2:  # rows x tokens: every token counts once
        num = float((wb[:, None] * loss).sum())
        den = {"mean": loss.size, "self_normalized": float(wb.sum()) * loss.shape[1], "sum": 1.0}
    elif n_tok is not None:
        num = float((wb * n_tok * loss).sum())
        den = {"mean": float(n_tok.sum()), "self_normalized": float((wb * n_tok).sum()), "sum": 1.0}
    else:
        num = float((wb * loss).sum())
        den = {"mean": len(loss), "self_normalized": float(wb.sum()), "sum": 1.0}
    return num / den[reduction] if den[reduction] else None


@fuzzer("api.weighted_loss", loss_case, fast=60, slow=300)
def _weighted_loss(case):
    rows, tokens, ids, weights, reduction, n_tokens, seed = case
    rng = np.random.default_rng(seed)
    ids = np.array((ids * 3)[:rows] if ids else [0] * rows, dtype=np.int64)[:rows]
    rows = len(ids)
    loss = rng.uniform(0, 5, size=(rows,) if tokens is None else (rows, tokens))
    w = np.array(weights, dtype=np.float64)
    n_tok = None
    if n_tokens == "ones":
        n_tok = np.ones(rows)
    elif n_tokens == "zeros":
        n_tok = np.zeros(rows)
    elif n_tokens == "random":
        n_tok = rng.integers(0, 8, size=rows).astype(np.float64)
    if tokens is not None:
        n_tok = None  # 2-D losses carry their tokens

    def sound(result):
        if ((ids < 0) | (ids >= len(w))).any():
            return "domain ids outside [0, K) accepted silently"
        if not np.isfinite(w).all():
            return "non-finite weights accepted"
        expected = _expected_loss(loss, ids, w, reduction or "mean", n_tok)
        if expected is None:
            return None if math.isfinite(float(result)) else "degenerate batch gives non-finite"
        if not math.isclose(float(result), expected, rel_tol=1e-9, abs_tol=1e-12):
            return f"value {float(result)!r} != documented {expected!r}"
        return None

    kwargs = {} if reduction is None else {"reduction": reduction}
    if n_tok is not None:
        kwargs["n_tokens"] = n_tok
    run_api("weighted_loss", cm.weighted_loss, loss, ids, w, check=sound, **kwargs)


test_weighted_loss_fast, test_weighted_loss_slow = _weighted_loss

# -- schedules -------------------------------------------------------------------------------------

schedule_case = st.tuples(
    st.sampled_from(
        ["cooldown", "temperature", "anneal", "stages", "dense", "order_matters", "unimax_dynamic"]
    ),
    taus,
    taus,
    st.one_of(st.floats(0, 1), edge_floats, st.integers(-3, 200), hostile),
    good_sizes,
    st.one_of(st.integers(1, 500), st.sampled_from([0, -1, 2**62, 2**64])),
    st.one_of(st.integers(0, 600), st.sampled_from([-1, 2**62, 2**64, 10**30])),
)


def _build_schedule(kind, a, b, at, s):
    if kind == "cooldown":
        return cm.Cooldown(hot=a, cold=b, at=at)
    if kind == "temperature":
        return cm.schedule_from_dict({"kind": "temperature", "tau": a})
    if kind == "anneal":
        return cm.schedule_from_dict({"kind": "anneal", "start": a, "end": b, "shape": "cosine"})
    if kind == "stages":
        return cm.schedule_from_dict({"kind": "stages", "starts": [0, at], "dists": [a, b]})
    if kind == "dense":
        return cm.Dense(hot=a, cold=b, phases=3, end=at)
    if kind == "order_matters":
        return cm.schedule_from_dict({"kind": "order_matters", "high": [next(iter(s))], "at": at, "then": a})
    return cm.schedule_from_dict({"kind": "unimax_dynamic", "max_epochs": a, "after": b})


@fuzzer("api.schedules", schedule_case, fast=80, slow=400)
def _schedules(case):
    kind, a, b, at, s, total, step = case
    sched = run_api(f"{kind}.build", _build_schedule, kind, a, b, at, s, finite=False)
    if sched is not None:
        run_api(f"{kind}.probs_at", sched.probs_at, step, s, total, check=check_probs)


test_schedules_fast, test_schedules_slow = _schedules

# -- the sampler: construction, batches, hostile states ----------------------------------------------

sampler_case = st.tuples(
    sizes,
    st.one_of(taus, st.sampled_from([{"kind": "cooldown"}, {"kind": "cooldown", "hot": 1e-309}])),
    st.one_of(st.integers(1, 50), st.sampled_from([0, -1, 2**62, 2**64, 1.5, "10", None])),
    st.one_of(st.integers(1, 64), st.sampled_from([0, -1, 2**40, 2.0, "8", None])),
    st.one_of(st.integers(0, 2**32), st.sampled_from([-1, 2**64, 2**63, 1.5, "0", None])),
    st.sampled_from(["exact", "iid", "EXACT", "", None]),
    st.integers(0, 60),
)


def _batch_is_sound(sampler, names, n, step):
    def check(result):
        d, i = result
        if len(d) != sampler.batch_size or len(i) != sampler.batch_size:
            return f"batch of {len(d)} items, expected {sampler.batch_size}"
        if len(d) and (d.min() < 0 or d.max() >= len(names)):
            return "domain id out of range"
        if len(d) and ((i < 0) | (i >= n[d])).any():
            return "item index outside its domain"
        if any(c < 0 for c in sampler.cursors.values()):
            return "negative cursor"
        return None

    return run_api("sampler.batch", sampler.batch, step, check=check)


@fuzzer("api.sampler", sampler_case, fast=50, slow=250)
def _sampler(case):
    s, sched, total, batch, seed, comp, step = case
    sampler = run_api("sampler.build", cm.MixtureSampler, s, sched, total, batch, seed, comp, finite=False)
    if sampler is not None:
        n = np.array([s[k] for k in sampler.names], dtype=np.float64)
        _batch_is_sound(sampler, sampler.names, n, step % max(sampler.total_steps, 1))


test_sampler_fast, test_sampler_slow = _sampler

STATE_KEYS = ("step", "cursors", "residuals", "events", "version", "seed", "composition", "mixture")
state_case = st.tuples(
    good_sizes,
    st.integers(1, 16),
    st.integers(0, 20),  # steps advanced before saving
    st.sampled_from(STATE_KEYS),
    st.one_of(numbers, hostile, st.sampled_from([2**63 - 1, 2**63, 2**64, -(2**63), 1e300, math.inf])),
    st.booleans(),  # mutate one domain's entry (True) or the whole key (False)
)


@fuzzer("api.load_state_dict", state_case, fast=60, slow=300)
def _load_state(case):
    s, batch, advanced, key, value, per_domain = case
    sampler = cm.MixtureSampler(s, 5.0, total_steps=40, batch_size=batch, seed=1)
    for t in range(advanced):
        sampler.batch(t)
    state = sampler.state_dict()
    if per_domain and isinstance(state.get(key), dict) and state[key]:
        state[key] = {**state[key], next(iter(state[key])): value}
    elif key in ("events",) and per_domain:
        state[key] = [{"step": value, "name": "cooldown", "info": {}}]
    else:
        state[key] = value
    fresh = cm.MixtureSampler(s, 5.0, total_steps=40, batch_size=batch, seed=1)

    def load(st):
        fresh.load_state_dict(st)
        return True

    if run_api("sampler.load_state_dict", load, state) is None:
        return
    n = np.array([s[k] for k in fresh.names], dtype=np.float64)
    _batch_is_sound(fresh, fresh.names, n, min(fresh.step, fresh.total_steps - 1))


test_load_state_fast, test_load_state_slow = _load_state
