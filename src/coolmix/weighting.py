"""Loss weights that turn one sampling distribution into another, and the weighted reductions.

Scalarization (Li et al. 2025, Thm. 1): sample with p_s, multiply domain i's loss by
w_i = p_target,i / p_s,i. Then E_{x~p_s}[w L] = E_{x~p_target}[L] exactly; under SGD the
single-sample second moment grows by F(τ) = Σ_i p_τ,i² / p_1,i (Thm. 2, equal-s_i case).

Every number here is computed from log-probabilities, so any finite τ > 0 and any finite sizes
work; a result that does not fit a float64 is a `ConfigError`, never NaN or inf.
`weighted_loss` works on numpy arrays and torch tensors alike (duck-typed: the core never
imports torch; a tensor is recognised by its attributes).
"""

from __future__ import annotations

import contextlib
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from coolmix.distributions import Distribution, Temperature, as_distribution, check_tau, temperature_log_array
from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.rare_domains import weight_warnings
from coolmix.types import Reduction, Sizes
from coolmix.validate import check_finite, check_float, check_int

__all__ = [
    "REDUCTIONS",
    "StepWeights",
    "check_reachable",
    "loss_weights",
    "scalarization_weights",
    "step_weights",
    "theorem2_gap",
    "variance_inflation",
    "weighted_loss",
    "weights_array",
    "weights_at",
]

REDUCTIONS: tuple[str, ...] = ("mean", "self_normalized", "sum")


def _coerce(d: Any, field: str) -> Distribution:
    """`as_distribution`, with a bad τ number named after the argument (``target=-1`` → target)."""
    if isinstance(d, (int, float, np.integer, np.floating)) and not isinstance(d, bool):
        return Temperature(check_tau(d, field))
    return as_distribution(d, field)


def check_reachable(
    sample: Mapping[str, float] | Sequence[float] | np.ndarray,
    target: Mapping[str, float] | Sequence[float] | np.ndarray,
    names: Sequence[str] | None = None,
    field: str = "sample",
) -> None:
    """Raise unless every domain the target needs (p_target,i > 0) can be drawn (p_sample,i > 0).

    Re-weighting reaches a target only through domains that are sampled: w_i = p_t,i / p_s,i is
    undefined for p_s,i = 0, and training would silently give that domain weight 0. Mappings
    are aligned by name (``names`` defaults to the sample's keys); arrays by position.

    >>> check_reachable({"a": 1.0, "b": 0.0}, {"a": 0.5, "b": 0.5})
    Traceback (most recent call last):
    ...
    coolmix.errors.ConfigError: sample='b': is never sampled (p = 0) but has target probability > 0
    """
    if names is None:
        names = list(sample) if isinstance(sample, Mapping) else [str(i) for i in range(len(sample))]
    ps = weights_array(sample, names, field)
    pt = weights_array(target, names, "target")
    bad = np.flatnonzero((ps == 0) & (pt > 0))
    if bad.size:
        why = "is never sampled (p = 0) but has target probability > 0"
        raise ConfigError(field, names[int(bad[0])], why)


def _log_weights(
    names: tuple[str, ...], sizes: np.ndarray, target: Distribution, sample: Distribution, field: str
) -> np.ndarray:
    """w = exp(log p_t − log p_s), 0 where p_t = 0; unreachable targets and overflow raise."""
    lt, ls = target.log_array(names, sizes), sample.log_array(names, sizes)
    live = lt > -np.inf
    check_reachable((ls > -np.inf).astype(np.float64), live.astype(np.float64), names, field)  # supports
    w = np.zeros_like(lt)
    with np.errstate(over="ignore"):
        w[live] = np.exp(lt[live] - ls[live])
    if not np.isfinite(w).all():
        i = int(np.argmax(~np.isfinite(w)))
        raise ConfigError(field, names[i], "p_target / p_sample exceeds 1e308 for this domain")
    return w


def loss_weights(
    sizes: Sizes,
    target: Distribution | float | Mapping[str, Any] | str,
    sample: Distribution | float | Mapping[str, Any] | str = 1.0,
    batch_size: int | None = None,
) -> dict[str, float]:
    """w_i = p_target,i / p_sample,i: weights making sampling from ``sample`` optimise ``target``.

    Numbers are read as temperatures (anything `as_distribution` accepts works). A domain the
    sampler never draws (p_sample = 0) gets weight 0 and must also have p_target = 0, otherwise
    the target is unreachable (`check_reachable`). An up-weighted domain drawn less than once a
    batch (p·B < 1 with ``batch_size``; else a weight >= 100) is logged to the ``coolmix``
    logger with the one rare-domain warning (`coolmix.rare_domains`).

    >>> w = loss_weights({"a": 3, "b": 1}, target=float("inf"), sample=1)
    >>> w
    {'a': 0.6666666666666666, 'b': 2.0}
    """
    names, arr = check_sizes(sizes)
    dist = _coerce(sample, "sample")
    w = _log_weights(names, arr, _coerce(target, "target"), dist, "sample")
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, lo=1)
    for text in weight_warnings(names, w, dist.array(names, arr), batch_size):
        logging.getLogger("coolmix").warning(text)
    return to_mapping(names, w)


def weights_at(
    step: int,
    sizes: Sizes,
    schedule: Any,
    total_steps: int,
    target: Distribution | float | Mapping[str, Any] | str,
) -> dict[str, float]:
    """w_i(t) = p_target,i / p_i(t): the loss weights in force at ``step`` of a sampling ``schedule``.

    For loops outside the trainer (a packed stream, a DataLoader): weight batch t's per-example or
    per-token losses by domain with these (`weighted_loss`), and sampling under the schedule
    optimises ``target``. p_i(t) is ``schedule.probs_at(step, sizes, total_steps)``; a domain with
    p_i(t) = 0 is absent from that batch and gets 0, as in `step_weights`. Exposure-driven
    schedules read the realised counts, so take their p(t) from the sampler and use `step_weights`.

    >>> from coolmix.schedules import Cooldown
    >>> w = weights_at(75, {"a": 3, "b": 1}, Cooldown(hot=5, cold=1, at=0.5), 100, target=1.0)
    >>> w                                      # the τ=1 half samples the target: w = 1
    {'a': 1.0, 'b': 1.0}
    """
    from coolmix.schedules import as_schedule

    sched = as_schedule(schedule)
    if sched.needs_counts:
        why = "reads realised counts: use step_weights(sampler.probs_at(step), target)"
        raise ConfigError("schedule", type(sched).__name__, why)
    names, arr = check_sizes(sizes)
    p = sched.probs_at(step, sizes, check_int("total_steps", total_steps, lo=1))
    pt = np.exp(_coerce(target, "target").log_array(names, arr))
    return to_mapping(names, step_weights(p, pt, names=list(names)).weights)


def scalarization_weights(sizes: Sizes, tau: float, sample_tau: float = 1.0) -> dict[str, float]:
    """Theorem 1's equivalent weights, w_i = p(i; τ) / p(i; τ_s) (τ_s = 1: proportional sampling).

    >>> w = scalarization_weights({"en": 2733, "it": 162, "zh": 39, "sw": 1}, tau=5)
    >>> [round(v, 2) for v in w.values()]
    [0.49, 4.68, 14.61, 273.92]
    """
    names, arr = check_sizes(sizes)
    target, sample = Temperature(check_tau(tau)), Temperature(check_tau(sample_tau, "sample_tau"))
    return to_mapping(names, _log_weights(names, arr, target, sample, "sample_tau"))


def _log_p1(sizes: np.ndarray) -> np.ndarray:
    """log(n_i / Σ n) from log n, so a share below 1e-308 is still finite."""
    return temperature_log_array(sizes, 1.0)


def variance_inflation(sizes: Sizes, tau: float) -> float:
    """F(τ) = Σ_i p(i;τ)² / p(i;1) = 1 + χ²(p_τ ‖ p_1) ≥ 1 (Lemma 2.1; Thm. 3: non-decreasing in τ ≥ 1).

    Computed as Σ exp(2 log p_τ,i − log p_1,i), so a tiny p_1,i does not divide by zero; an F
    beyond float64 range is a ConfigError.

    >>> round(variance_inflation({"en": 2733, "it": 162, "zh": 39, "sw": 1}, tau=5), 1)
    29.8
    """
    names, arr = check_sizes(sizes)
    lt = Temperature(check_tau(tau)).log_array(names, arr)
    with np.errstate(over="ignore"):
        f = float(np.sum(np.exp(2.0 * lt - _log_p1(arr))))
    if not np.isfinite(f):
        raise ConfigError("tau", tau, "F(tau) exceeds the float64 range for these sizes")
    return f


def theorem2_gap(
    sizes: Sizes, tau: float, second_moments: Mapping[str, float], sample_tau: float = 1.0
) -> float:
    """E‖g_S‖² − E‖g_TS‖² = Σ_i p_τ,i (w_i − 1) s_i for single-sample estimators.

    Theorem 2 assumes equal s_i (then the gap is s·(F − 1) ≥ 0); with unequal per-domain
    gradient second moments s_i it can be negative (paper.md §2: n=(9,1), τ=∞, s_H=10 s_L).
    Each s_i must be finite and ≥ 0.

    >>> round(theorem2_gap({"H": 9, "L": 1}, float("inf"), {"H": 10.0, "L": 1.0}), 3)
    -0.222
    """
    names, arr = check_sizes(sizes)
    if not isinstance(second_moments, Mapping):
        raise ConfigError("second_moments", second_moments, "must be a mapping of domain -> moment")
    missing = [n for n in names if n not in second_moments]
    if missing:
        raise ConfigError("second_moments", missing[0], "missing a domain")
    s = np.array([check_float(f"second_moments.{n}", second_moments[n], lo=0.0) for n in names])
    lt = Temperature(check_tau(tau)).log_array(names, arr)
    ls = Temperature(check_tau(sample_tau, "sample_tau")).log_array(names, arr)
    live = lt > -np.inf
    check_reachable((ls > -np.inf).astype(np.float64), live.astype(np.float64), names, "sample_tau")
    # p_τ (w − 1) s = (p_τ² / p_s − p_τ) s, each term from logs
    terms = np.zeros_like(s)
    with np.errstate(over="ignore", invalid="ignore"):
        terms[live] = (np.exp(2.0 * lt[live] - ls[live]) - np.exp(lt[live])) * s[live]
        gap = float(np.sum(terms))
    if not np.isfinite(gap):
        raise ConfigError("second_moments", dict(second_moments), "the gap exceeds the float64 range")
    return gap


def weights_array(
    weights: Mapping[str, float] | Sequence[float] | np.ndarray,
    names: Sequence[str],
    field: str = "weights",
) -> np.ndarray:
    """Mapping by name or aligned sequence of per-domain weights -> float64 array aligned with ``names``.

    Every weight must be finite and ≥ 0; a mapping must name each domain once and nothing else.

    >>> weights_array({"b": 2.0, "a": 1.0}, ["a", "b"]).tolist()
    [1.0, 2.0]
    """
    if isinstance(weights, Mapping):
        missing = [n for n in names if n not in weights]
        if missing:
            raise ConfigError(field, missing[0], "no weight for this domain")
        extra = [k for k in weights if k not in names]
        if extra:
            raise ConfigError(field, extra[0], f"unknown domain; known: {', '.join(map(str, names))}")
        return np.array([check_float(f"{field}.{n}", weights[n], lo=0.0) for n in names])
    if _is_tensor(weights):  # a torch tensor: read its values on the host
        weights = _host(weights)
    try:
        arr = np.asarray(weights, dtype=np.float64)
    except (TypeError, ValueError):
        why = "must be numbers aligned with the domains or a name -> weight mapping"
        raise ConfigError(field, weights, why) from None
    if arr.shape != (len(names),):
        raise ConfigError(field, arr.shape, f"expected {len(names)} aligned weights")
    if not np.isfinite(arr).all() or (arr < 0).any():
        raise ConfigError(field, arr.tolist(), "weights must be finite and >= 0")
    return arr


# -- the weighted reduction --------------------------------------------------------------------


def _is_tensor(x: Any) -> bool:
    """A torch tensor, recognised by its attributes (the core never imports torch)."""
    return hasattr(x, "new_tensor") and hasattr(x, "device")


def _host(x: Any) -> np.ndarray:
    """A tensor's values as a numpy array on the host."""
    return x.detach().cpu().numpy()


def weighted_loss(
    per_example_loss: Any,
    domain_ids: Any,
    weights: Any,
    reduction: Reduction | str = "mean",
    n_tokens: Any = None,
    *,
    mask: Any = None,
    ignore_index: int | None = None,
    names: Sequence[str] | None = None,
    check_ids: bool = True,
) -> Any:
    """Reduce losses ℓ with per-domain weights w[domain_ids]; numpy in → numpy out, tensor → tensor.

    ``per_example_loss`` is 1-D (B,) per example or 2-D (B, T) per token; ``domain_ids`` is (B,)
    (one domain per row) or, for 2-D losses, (B, T) (one per token, as packing produces). An
    element j is *counted* (c_j = 1) unless ``mask`` is false there or its id equals
    ``ignore_index``; uncounted elements contribute nothing, whatever their loss (even NaN); a
    counted element of weight 0 contributes 0·ℓ (NaN if ℓ is: a broken loss stays visible).
    Any other id outside [0, K) is a ConfigError naming ``domain_ids``. With ``n_tokens``
    (1-D losses only) ℓ_b is a per-token mean over n_b tokens and c_b becomes n_b.

    - ``mean`` (the paper's unbiased L_S): Σ_j c_j w_j ℓ_j / Σ_j c_j, i.e. over N counted tokens
      (2-D), counted examples (1-D) or Σ n_b (``n_tokens``);
    - ``self_normalized`` (DoReMi-style): Σ_j c_j w_j ℓ_j / Σ_j c_j w_j;
    - ``sum``: Σ_j c_j w_j ℓ_j (for gradient accumulation; divide by the global count yourself).

    A batch where nothing is counted (empty, all masked, all-zero token counts) or whose counted
    weights are all 0 (``self_normalized``) returns 0.0 of the loss's type, dtype and device —
    never NaN — and its gradient is 0. ``weights`` is aligned with domain ids (list, numpy,
    tensor) or a name → weight mapping aligned by ``names``. Tensors stay tensors, so gradients flow.
    Tensors are reduced in float32 at least (half-precision sums overflow at 65504), and the
    result has that dtype; integer and bool losses are converted to float. Weight and ``n_tokens``
    tensors are checked like arrays (finite, >= 0). These checks and the id range check cost one
    device → host sync each on an accelerator; ``check_ids=False`` skips them for inputs that
    are valid by construction (the sampler's ids, weights from `step_weights`), at your own risk.

    >>> float(weighted_loss(np.array([1.0, 3.0]), np.array([0, 1]), np.array([2.0, 0.5])))
    1.75
    >>> tok = np.array([[1.0, 1.0, 9.0], [3.0, 9.0, 9.0]])
    >>> ids = np.array([[0, 0, -1], [1, -1, -1]])
    >>> float(weighted_loss(tok, ids, {"en": 2.0, "sw": 0.5}, names=["en", "sw"], ignore_index=-1))
    1.8333333333333333
    """
    if reduction not in REDUCTIONS:
        raise ConfigError("reduction", reduction, "must be 'mean', 'self_normalized' or 'sum'")
    if ignore_index is not None:
        ignore_index = check_int("ignore_index", ignore_index)
    torch_like = _is_tensor(per_example_loss)
    loss = _accumulating(per_example_loss) if torch_like else _np_float(per_example_loss, "per_example_loss")
    if loss.ndim not in (1, 2):
        why = "must be 1-D (examples) or 2-D (rows × tokens)"
        raise ConfigError("per_example_loss", tuple(loss.shape), why)
    ids = _ids(domain_ids, loss, torch_like)
    w = _weights(weights, names, loss, torch_like, check_ids)
    k = int(w.shape[0])
    per_row = ids.ndim < loss.ndim  # one domain per row of a 2-D loss
    m = None if mask is None else _mask(mask, loss, torch_like)
    counted = None  # None: every element counts (the plain path: no extra elementwise ops)
    if ignore_index is not None:
        counted = ids != ignore_index
    if m is not None:
        row = m.any(-1) if per_row else m  # a fully masked row is padding
        counted = row if counted is None else counted & row
    if check_ids:
        _check_ids(ids, counted, k, ignore_index, torch_like)
    wb = w[ids if counted is None else _where(counted, ids, ids * 0)]
    if per_row:
        wb = wb[:, None]
        if counted is not None:
            counted = counted[:, None] & m if m is not None else _expand(counted[:, None], loss, torch_like)
    count = None if counted is None else _as_float(counted, loss, torch_like)
    if n_tokens is not None:
        n = _n_tokens(n_tokens, loss, torch_like, check_ids)
        count = n if count is None else count * n
    with contextlib.nullcontext() if torch_like else np.errstate(invalid="ignore", over="ignore"):
        prod = wb * loss if count is None else wb * count * loss
        if count is not None:  # NaN/inf where nothing counts is dropped, not multiplied by 0
            prod = _where(count > 0, prod, _zeros_like(loss, torch_like))
    num = prod.sum()
    if not torch_like and not np.isfinite(num) and np.isfinite(loss).all():
        # finite losses, non-finite total: the weights overflowed float64 (a tensor's NaN/inf stays visible)
        raise ConfigError("weights", "max=" + repr(float(np.max(w))), "weighted sum overflows float64")
    if reduction == "sum":
        return num
    if count is None:  # every element counts once
        per = loss.shape[-1] if per_row else 1
        den: Any = math.prod(loss.shape) if reduction == "mean" else wb.sum() * per
    else:
        den = (count if reduction == "mean" else wb * count).sum()
    # den = 0 means nothing was counted, so num = 0 too: return it (0.0, grad 0) instead of 0/0
    if torch_like and _is_tensor(den):
        return num / _where(den > 0, den, den * 0 + 1)
    return num / den if den > 0 else num


def _check_ids(ids: Any, counted: Any, k: int, ignore_index: int | None, torch_like: bool) -> None:
    """Every counted id in [0, k), else a ConfigError naming ``domain_ids`` and the first bad id."""
    if counted is None:
        if math.prod(ids.shape) == 0:
            return
        lo, hi = ids.aminmax() if torch_like else (ids.min(), ids.max())
        lo, hi = int(lo), int(hi)  # on an accelerator: one wait, the second read is already there
        if lo >= 0 and hi < k:
            return
        bad = (ids < 0) | (ids >= k)
    else:
        bad = counted & ((ids < 0) | (ids >= k))
        if not bool(bad.any()):
            return
    why = f"ids must be in [0, {k})" + ("" if ignore_index is None else f" or equal {ignore_index}")
    raise ConfigError("domain_ids", int(ids[bad].reshape(-1)[0]), why + " (ignore_index= skips padding ids)")


def _expand(x: Any, like: Any, torch_like: bool) -> Any:
    return x.expand(like.shape) if torch_like else np.broadcast_to(x, like.shape)


def _zeros_like(x: Any, torch_like: bool) -> Any:
    return x.new_zeros(x.shape) if torch_like else np.zeros_like(x)


def _where(cond: Any, a: Any, b: Any) -> Any:
    if _is_tensor(a):
        return sys.modules["torch"].where(cond, a, b)
    return np.where(cond, a, b)


def _np_float(x: Any, field: str) -> np.ndarray:
    if _is_tensor(x):
        x = _host(x)
    try:
        return np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise ConfigError(field, x, "must be an array of numbers") from None


def _ids(domain_ids: Any, loss: Any, torch_like: bool) -> Any:
    """Domain ids as an integer array/tensor of shape (B,) or loss.shape, on the loss's device."""
    if torch_like and _is_tensor(domain_ids):
        dt = domain_ids.dtype
        if dt.is_floating_point or dt.is_complex or str(dt) == "torch.bool":
            raise ConfigError("domain_ids", str(dt), "must be integer ids")
        ids = domain_ids.to(loss.device).long()
    else:
        if _is_tensor(domain_ids):
            domain_ids = _host(domain_ids)
        try:
            arr = np.asarray(domain_ids)
        except (TypeError, ValueError):
            raise ConfigError("domain_ids", domain_ids, "must be an array of integer ids") from None
        if arr.size == 0:
            arr = arr.astype(np.int64)
        if not np.issubdtype(arr.dtype, np.integer):
            raise ConfigError("domain_ids", str(arr.dtype), "must be integer ids")
        ids = sys.modules["torch"].as_tensor(arr.astype(np.int64), device=loss.device) if torch_like else arr
    shape, want = tuple(ids.shape), tuple(loss.shape)
    if shape != want and shape != want[:1]:
        raise ConfigError("domain_ids", shape, f"shape must be {want[:1]} (per row) or {want} (per token)")
    return ids


def _accumulating(loss: Any) -> Any:
    """A loss tensor in the dtype its sums are taken in: float32 at least (fp16/bf16 sums overflow
    or lose the small terms), float64 kept; integer and bool losses become floats, not truncated
    weights. Complex losses are refused."""
    torch = sys.modules["torch"]
    dt = loss.dtype
    if dt.is_complex:
        raise ConfigError("per_example_loss", str(dt), "must be real numbers")
    acc = torch.promote_types(dt if dt.is_floating_point else torch.get_default_dtype(), torch.float32)
    return loss if dt == acc else loss.to(acc)


def _check_tensor(field: str, t: Any, given: Any) -> None:
    """A weight or token-count tensor (``given``, as ``t`` in the accumulation dtype) like an array:
    every entry finite and >= 0 (one host sync)."""
    torch = sys.modules["torch"]
    if bool((~torch.isfinite(t) | (t < 0)).any()):
        why = f"must be finite and >= 0 (in {str(t.dtype).removeprefix('torch.')}, the loss's sum dtype)"
        raise ConfigError(field, given.detach().cpu().reshape(-1)[:8].tolist(), why)


def _weights(
    weights: Any, names: Sequence[str] | None, loss: Any, torch_like: bool, check: bool = True
) -> Any:
    """Per-domain weights as a 1-D array/tensor in the loss's (accumulation) dtype and device."""
    if isinstance(weights, Mapping):
        if names is None:
            raise ConfigError("names", None, "a name -> weight mapping needs names= (the ids' domain order)")
        arr: Any = weights_array(weights, names)
    elif torch_like and _is_tensor(weights):
        n = weights.shape[0] if weights.ndim == 1 else 0
        if n == 0 or (names is not None and n != len(names)):
            raise ConfigError("weights", tuple(weights.shape), "must be one weight per domain")
        if weights.dtype.is_complex:
            raise ConfigError("weights", str(weights.dtype), "must be real numbers")
        w = weights.to(device=loss.device, dtype=loss.dtype)
        if check:
            _check_tensor("weights", w, weights)
        return w
    else:
        if _is_tensor(weights):
            weights = _host(weights)
        try:
            n = len(weights) if names is None else len(names)
        except TypeError:
            why = "must be per-domain numbers or a name -> weight mapping"
            raise ConfigError("weights", weights, why) from None
        if n == 0:
            raise ConfigError("weights", weights, "no domains: give one weight per domain")
        arr = weights_array(weights, [str(i) for i in range(n)] if names is None else names)
    if torch_like:
        return sys.modules["torch"].as_tensor(arr, dtype=loss.dtype, device=loss.device)
    return arr


def _mask(mask: Any, loss: Any, torch_like: bool) -> Any:
    """The mask as bools shaped like the loss (non-zero = counted), on the loss's device."""
    if torch_like:
        m = mask if _is_tensor(mask) else sys.modules["torch"].as_tensor(np.asarray(mask))
        m = m.to(loss.device) != 0
    else:
        try:
            m = np.asarray(_host(mask) if _is_tensor(mask) else mask, dtype=np.float64) != 0
        except (TypeError, ValueError):
            raise ConfigError("mask", mask, "must be an array of bools or 0/1 shaped like the loss") from None
    if tuple(m.shape) != tuple(loss.shape):
        raise ConfigError("mask", tuple(m.shape), f"shape must be {tuple(loss.shape)} like the loss")
    return m


def _as_float(x: Any, like: Any, torch_like: bool) -> Any:
    return x.to(like.dtype) if torch_like else x.astype(np.float64)


def _n_tokens(n_tokens: Any, loss: Any, torch_like: bool, check: bool = True) -> Any:
    if loss.ndim != 1:
        raise ConfigError("n_tokens", None, "only with 1-D losses (2-D losses count their own tokens)")
    if torch_like and _is_tensor(n_tokens):
        if n_tokens.dtype.is_complex:
            raise ConfigError("n_tokens", str(n_tokens.dtype), "must be real numbers")
        n = n_tokens.to(device=loss.device, dtype=loss.dtype)
        if check:
            _check_tensor("n_tokens", n, n_tokens)
    else:
        arr = _np_float(n_tokens, "n_tokens")
        if not np.isfinite(arr).all() or (arr < 0).any():
            raise ConfigError("n_tokens", arr.tolist(), "token counts must be finite and >= 0")
        n = sys.modules["torch"].as_tensor(arr, dtype=loss.dtype, device=loss.device) if torch_like else arr
    if tuple(n.shape) != tuple(loss.shape):
        raise ConfigError("n_tokens", tuple(n.shape), f"shape must be {tuple(loss.shape)} like the loss")
    return n


# -- per-step weights and normaliser, shared by the trainer, the HF Trainer and DoReMi ----------


@dataclass(frozen=True)
class StepWeights:
    """Per-domain loss weights in force at one step, and the normaliser of its *global* batch.

    The step's loss is ``weighted_loss(loss, ids, weights, "sum") / normaliser`` (per rank:
    divide by normaliser / world_size, since DDP averages gradients over ranks).
    """

    weights: np.ndarray
    """w_i aligned with the domain ids (1 without a target; 0 where p_sample,i = 0)."""
    normaliser: float
    """N of the chosen reduction over the global batch (> 0; 1 when nothing is counted)."""


def step_weights(
    sample: Mapping[str, float] | Sequence[float] | np.ndarray,
    target: Mapping[str, float] | Sequence[float] | np.ndarray | None = None,
    domains: Any = None,
    *,
    reduction: Reduction | str = "mean",
    n_tokens: Any = None,
    names: Sequence[str] | None = None,
) -> StepWeights:
    """w_i = target_i / p_sample,i(t) and the global-batch normaliser for that step.

    ``sample`` is the sampler's p(t); ``target`` the probabilities (or DoReMi's α) to reach, or
    None for plain sampling (w = 1). A domain with p_sample,i(t) = 0 is absent from the batch
    and gets w_i = 0 (check the run as a whole with `check_reachable`). ``domains`` are the
    global batch's ids, ``n_tokens`` its per-example token counts (per-token reductions).
    Normaliser: ``mean`` Σ_b n_b (or B), ``self_normalized`` Σ_b w_{d_b} n_b (or Σ_b w_{d_b}),
    ``sum`` 1; a batch that counts nothing gets 1, so its (zero) loss stays 0, not NaN.

    >>> s = step_weights([0.75, 0.25], [0.5, 0.5], np.array([0, 0, 0, 1]), reduction="self_normalized")
    >>> s.weights.tolist(), s.normaliser
    ([0.6666666666666666, 2.0], 4.0)
    """
    if reduction not in REDUCTIONS:
        raise ConfigError("reduction", reduction, "must be 'mean', 'self_normalized' or 'sum'")
    if names is None:
        names = list(sample) if isinstance(sample, Mapping) else [str(i) for i in range(len(sample))]
    ps = weights_array(sample, names, "sample")
    if target is None:
        w = np.ones_like(ps)
    else:
        pt = weights_array(target, names, "target")
        w = np.divide(pt, ps, out=np.zeros_like(pt), where=ps > 0)
        check_finite("sample", w)
    if reduction == "sum" or domains is None:
        return StepWeights(w, 1.0)
    d = np.asarray(_host(domains) if _is_tensor(domains) else domains).reshape(-1)
    if d.size and (not np.issubdtype(d.dtype, np.integer) or d.min() < 0 or d.max() >= len(names)):
        why = f"global batch ids must be integers in [0, {len(names)})"
        raise ConfigError("domains", d.tolist()[:8], why)
    n = np.ones(d.shape) if n_tokens is None else _np_float(n_tokens, "n_tokens").reshape(-1)
    if n.shape != d.shape:
        raise ConfigError("n_tokens", n.shape, f"shape must be {d.shape} like domains")
    norm = float(n.sum()) if reduction == "mean" else float((w[d.astype(np.int64)] * n).sum())
    return StepWeights(w, norm if norm > 0 else 1.0)
