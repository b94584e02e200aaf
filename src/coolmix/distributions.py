"""Sampling distributions over domains: `sizes -> probs`, every knob a named argument.

Conventions (Li et al. 2025 use the first row; convert the others explicitly):

| system                               | formula                    | knob            |
|--------------------------------------|----------------------------|-----------------|
| coolmix, fairseq, seqio, NeMo, paper | p_i ∝ n_i^(1/τ)            | ``tau=τ``       |
| fairseq MLM ``--multilang-sampling-alpha``, XLM-R | p_i ∝ n_i^α   | ``alpha=α=1/τ`` |
| GPT-NeoX ``weighted_sampler_alpha``  | p_i ∝ q_i^α · (1 − q_i)    | ``convention="neox"`` |

τ = 1 is proportional, τ = ∞ is uniform (the paper's τ = 100 is "≈ uniform"). Sizes may be in
any unit (examples, tokens, ...): the probabilities are per *draw* of that unit, so declare it
in a `Mixture` and keep it consistent with what the sampler draws.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

import numpy as np

from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.types import Sizes

__all__ = [
    "DISTRIBUTIONS",
    "Distribution",
    "Explicit",
    "Proportional",
    "Temperature",
    "UniMax",
    "UniMaxAllocation",
    "Uniform",
    "distribution_from_dict",
    "explicit_probs",
    "proportional_probs",
    "temperature_array",
    "temperature_probs",
    "uniform_probs",
    "unimax",
    "unimax_probs",
]

Convention = Literal["standard", "neox"]


def check_tau(tau: Any, field: str = "tau") -> float:
    """τ must be a number > 0 (``inf`` allowed: uniform)."""
    if isinstance(tau, bool) or not isinstance(tau, (int, float, np.integer, np.floating)):
        raise ConfigError(field, tau, "must be a number > 0 (inf for uniform)")
    tau = float(tau)
    if math.isnan(tau) or tau <= 0:
        raise ConfigError(field, tau, "must be > 0 (inf for uniform)")
    return tau


def temperature_array(sizes: np.ndarray, tau: float, convention: Convention = "standard") -> np.ndarray:
    """p ∝ n^(1/τ) on an aligned array, computed in log space (safe for n up to 1e15, τ up to ∞)."""
    if math.isinf(tau):
        logits = np.zeros_like(sizes)
    else:
        logits = np.log(sizes) / tau
    if convention == "neox":
        q = sizes / sizes.sum()
        # GPT-NeoX multiplies by (1 - q); a single domain (q = 1) would give 0, so keep it at 1.
        logits = logits + np.log(np.where(q < 1.0, 1.0 - q, 1.0))
    logits = logits - logits.max()
    p = np.exp(logits)
    return p / p.sum()


def temperature_probs(
    sizes: Sizes,
    tau: float | None = None,
    *,
    alpha: float | None = None,
    convention: Convention = "standard",
) -> dict[str, float]:
    """Temperature sampling, p_i = n_i^(1/τ) / Σ_j n_j^(1/τ) (Li et al. 2025, §2.1).

    Give ``tau`` or ``alpha = 1/τ`` by name. ``convention="neox"`` applies GPT-NeoX's extra
    (1 − q_i) factor.

    >>> p = temperature_probs({"en": 2733, "it": 162, "zh": 39, "sw": 1}, tau=5)
    >>> [round(v, 3) for v in p.values()]
    [0.454, 0.258, 0.194, 0.093]
    """
    names, arr = check_sizes(sizes)
    tau = _resolve_tau(tau, alpha)
    if convention not in ("standard", "neox"):
        raise ConfigError("convention", convention, "must be 'standard' or 'neox'")
    return to_mapping(names, temperature_array(arr, tau, convention))


def _resolve_tau(tau: float | None, alpha: float | None) -> float:
    if (tau is None) == (alpha is None):
        raise ConfigError("tau", tau, "give exactly one of tau= or alpha= (alpha = 1/tau)")
    if alpha is not None:
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not alpha >= 0:
            raise ConfigError("alpha", alpha, "must be a number >= 0 (0 means uniform)")
        if math.isinf(alpha):
            raise ConfigError("alpha", alpha, "must be finite")
        return math.inf if alpha == 0 else 1.0 / float(alpha)
    return check_tau(tau)


def proportional_probs(sizes: Sizes) -> dict[str, float]:
    """p_i = n_i / N (τ = 1): every unit of data equally likely.

    >>> proportional_probs({"a": 3, "b": 1})
    {'a': 0.75, 'b': 0.25}
    """
    names, arr = check_sizes(sizes)
    return to_mapping(names, arr / arr.sum())


def uniform_probs(sizes: Sizes) -> dict[str, float]:
    """p_i = 1/K (τ = ∞): every domain equally likely, whatever its size."""
    names, arr = check_sizes(sizes)
    return to_mapping(names, np.full(len(arr), 1.0 / len(arr)))


def explicit_probs(weights: Mapping[str, float], field: str = "weights") -> dict[str, float]:
    """Normalise non-negative weights to probabilities; zero weights are allowed, all-zero is not.

    >>> explicit_probs({"a": 2, "b": 0, "c": 2})
    {'a': 0.5, 'b': 0.0, 'c': 0.5}
    """
    names, arr = _check_weights(weights, field)
    return to_mapping(names, arr / arr.sum())


def _check_weights(weights: Mapping[str, float], field: str) -> tuple[tuple[str, ...], np.ndarray]:
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(field, weights, "must be a non-empty mapping of domain -> weight")
    names = tuple(weights)
    values = []
    for n in names:
        v = weights[n]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)):
            raise ConfigError(f"{field}.{n}", v, "weight must be a number")
        if not math.isfinite(float(v)) or float(v) < 0:
            raise ConfigError(f"{field}.{n}", v, "weight must be finite and >= 0")
        values.append(float(v))
    arr = np.array(values)
    if arr.sum() <= 0:
        raise ConfigError(field, dict(weights), "weights sum to 0")
    return names, arr


@dataclass(frozen=True)
class UniMaxAllocation:
    """UniMax result: per-domain budget (in the sizes' unit), epochs (budget / size), probs."""

    budgets: dict[str, float]
    epochs: dict[str, float]
    probs: dict[str, float]


def unimax(sizes: Sizes, budget: float, max_epochs: float) -> UniMaxAllocation:
    """UniMax (Chung et al. 2023, Alg. 1): near-uniform budget with at most ``max_epochs`` per domain.

    Visit domains from smallest to largest; give each an equal share of the remaining budget,
    capped at max_epochs · n_i, and carry the rest forward. If every domain is capped, the
    allocation sums to less than ``budget`` (probs are normalised over what was allocated).

    >>> a = unimax({"big": 100, "small": 10}, budget=60, max_epochs=2)
    >>> a.budgets, a.epochs["small"]
    ({'big': 40.0, 'small': 20.0}, 2.0)
    """
    names, arr = check_sizes(sizes)
    if isinstance(budget, bool) or not isinstance(budget, (int, float)) or not budget > 0:
        raise ConfigError("budget", budget, "must be a number > 0 (same unit as sizes)")
    if not math.isfinite(budget):
        raise ConfigError("budget", budget, "must be finite")
    if isinstance(max_epochs, bool) or not isinstance(max_epochs, (int, float)) or not max_epochs > 0:
        raise ConfigError("max_epochs", max_epochs, "must be a number > 0")
    alloc = np.zeros_like(arr)
    remaining = float(budget)
    order = np.argsort(arr, kind="stable")
    for k, i in enumerate(order):
        share = remaining / (len(arr) - k)
        alloc[i] = min(share, max_epochs * arr[i])
        remaining -= alloc[i]
    return UniMaxAllocation(
        budgets=to_mapping(names, alloc),
        epochs=to_mapping(names, alloc / arr),
        probs=to_mapping(names, alloc / alloc.sum()),
    )


def unimax_probs(sizes: Sizes, budget: float, max_epochs: float) -> dict[str, float]:
    """UniMax sampling probabilities (see `unimax`)."""
    return unimax(sizes, budget, max_epochs).probs


# ---------------------------------------------------------------------------------------------
# Distribution values: small frozen specs used by schedules, loss weights and configs.


class Distribution:
    """A named way to turn sizes into probabilities; a frozen, serialisable value."""

    kind: ClassVar[str] = ""

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        """Probabilities aligned with ``names`` (validated inputs)."""
        raise NotImplementedError

    def probs(self, sizes: Sizes) -> dict[str, float]:
        """Public form: mapping in, mapping out."""
        names, arr = check_sizes(sizes)
        return to_mapping(names, self.array(names, arr))

    @property
    def tau(self) -> float | None:
        """The temperature this distribution corresponds to, if any."""
        return None

    def to_dict(self) -> dict[str, Any]:
        raise NotImplementedError


@dataclass(frozen=True)
class Temperature(Distribution):
    """p_i ∝ n_i^(1/τ); τ=1 proportional, τ=inf uniform."""

    value: float = 1.0
    convention: Convention = "standard"
    kind: ClassVar[str] = "temperature"

    def __post_init__(self) -> None:
        object.__setattr__(self, "value", check_tau(self.value, "tau"))
        if self.convention not in ("standard", "neox"):
            raise ConfigError("convention", self.convention, "must be 'standard' or 'neox'")

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        return temperature_array(sizes, self.value, self.convention)

    @property
    def tau(self) -> float:
        return self.value

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "tau": _tau_out(self.value)}
        if self.convention != "standard":
            d["convention"] = self.convention
        return d


@dataclass(frozen=True)
class Proportional(Temperature):
    """τ = 1."""

    value: float = 1.0
    kind: ClassVar[str] = "proportional"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True)
class Uniform(Temperature):
    """τ = ∞."""

    value: float = math.inf
    kind: ClassVar[str] = "uniform"

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}


@dataclass(frozen=True, eq=True, unsafe_hash=False)
class Explicit(Distribution):
    """Given weights, normalised; domains missing from ``weights`` get 0."""

    weights: Mapping[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "explicit"

    def __post_init__(self) -> None:
        names, arr = _check_weights(self.weights, "weights")
        object.__setattr__(self, "weights", dict(zip(names, arr.tolist())))

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        unknown = sorted(set(self.weights) - set(names))
        if unknown:
            raise ConfigError("weights", unknown, f"unknown domains; known: {', '.join(names)}")
        arr = np.array([self.weights.get(n, 0.0) for n in names])
        if arr.sum() <= 0:
            raise ConfigError("weights", dict(self.weights), "weights of known domains sum to 0")
        return arr / arr.sum()

    def __hash__(self) -> int:  # weights is a dict; hash its items so contexts can memoise
        return hash((self.kind, tuple(self.weights.items())))

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "weights": dict(self.weights)}


@dataclass(frozen=True)
class UniMax(Distribution):
    """Static UniMax allocation as a distribution (budget in the sizes' unit)."""

    budget: float = 1.0
    max_epochs: float = 1.0
    kind: ClassVar[str] = "unimax"

    def __post_init__(self) -> None:
        unimax({"_": 1.0}, self.budget, self.max_epochs)  # validates both knobs

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        probs = unimax(dict(zip(names, sizes.tolist())), self.budget, self.max_epochs).probs
        return np.array([probs[n] for n in names])

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "budget": self.budget, "max_epochs": self.max_epochs}


def _tau_out(tau: float) -> float | str:
    return "inf" if math.isinf(tau) else tau


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    "temperature": Temperature,
    "proportional": Proportional,
    "uniform": Uniform,
    "explicit": Explicit,
    "unimax": UniMax,
}


def distribution_from_dict(d: Mapping[str, Any] | float | str, field: str = "distribution") -> Distribution:
    """Config value -> Distribution: a τ number, ``"inf"``, or a table with ``kind``.

    >>> distribution_from_dict({"kind": "temperature", "tau": 5})
    Temperature(value=5.0, convention='standard')
    """
    if isinstance(d, (int, float)) and not isinstance(d, bool):
        return Temperature(d)
    if isinstance(d, str):
        if d in ("inf", "uniform"):
            return Uniform()
        if d == "proportional":
            return Proportional()
        raise ConfigError(field, d, "expected a tau number, 'inf', 'uniform' or a table")
    if not isinstance(d, Mapping):
        raise ConfigError(field, d, "expected a tau number or a table with 'kind'")
    kind = d.get("kind", "temperature" if ("tau" in d or "alpha" in d) else None)
    if kind not in DISTRIBUTIONS:
        raise ConfigError(f"{field}.kind", kind, f"must be one of {', '.join(DISTRIBUTIONS)}")
    args = {k: v for k, v in d.items() if k != "kind"}
    allowed = {
        "temperature": {"tau", "alpha", "convention"},
        "proportional": set(),
        "uniform": set(),
        "explicit": {"weights"},
        "unimax": {"budget", "max_epochs"},
    }[kind]
    extra = sorted(set(args) - allowed)
    if extra:
        raise ConfigError(f"{field}.{extra[0]}", args[extra[0]], f"unknown key for kind={kind!r}")
    if kind == "temperature":
        tau = args.get("tau")
        if isinstance(tau, str) and tau == "inf":
            tau = math.inf
        return Temperature(_resolve_tau(tau, args.get("alpha")), args.get("convention", "standard"))
    return DISTRIBUTIONS[kind](**args)
