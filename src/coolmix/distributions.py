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

import contextlib
import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, cast

import numpy as np

from coolmix.errors import ConfigError
from coolmix.mixture import check_sizes, to_mapping
from coolmix.types import Sizes
from coolmix.validate import check_finite, check_float, decode_inf, encode_inf

__all__ = [
    "DISTRIBUTIONS",
    "Distribution",
    "Explicit",
    "Proportional",
    "Temperature",
    "UniMax",
    "UniMaxAllocation",
    "Uniform",
    "as_distribution",
    "check_tau",
    "explicit_probs",
    "normalise",
    "proportional_probs",
    "temperature_array",
    "temperature_log_array",
    "temperature_probs",
    "uniform_probs",
    "unimax",
    "unimax_probs",
]

Convention = Literal["standard", "neox"]


def check_tau(tau: Any, field: str = "tau") -> float:
    """τ must be a number > 0 (``inf`` allowed: uniform; ``"inf"`` is decoded to it)."""
    tau = decode_inf(tau)
    if isinstance(tau, (int, float, np.integer, np.floating)) and not isinstance(tau, bool):
        with contextlib.suppress(OverflowError):  # a too-large int: check_float names it
            tau = float(tau)  # errors show the value as the float it is read as
    return check_float(field, tau, lo=0.0, lo_open=True, allow_inf=True)


def normalise(values: np.ndarray, field: str) -> np.ndarray:
    """v / Σ v for finite non-negative v, scaled by max(v) first so Σ v cannot overflow.

    The one normaliser behind every public output here: the result is finite and sums to 1, or
    `ConfigError` names ``field`` (all zero, or a non-finite input).
    """
    check_finite(field, values)
    top = float(values.max()) if values.size else 0.0
    if not top > 0:
        raise ConfigError(field, values.tolist(), "nothing to normalise: every weight is 0")
    scaled = values / top
    return scaled / scaled.sum()


def _temperature_logits(sizes: np.ndarray, tau: float, convention: Convention) -> np.ndarray:
    """logits_i = (log n_i − max_j log n_j) / τ (+ NeoX's log(1 − q_i)), shifted so max = 0.

    The numerator is ≤ 0, so dividing by a tiny τ gives −inf, never NaN: τ → 0 is the one-hot
    limit on the largest domain(s); τ = ∞ gives all zeros (uniform).
    """
    logn = np.log(sizes)
    with np.errstate(over="ignore"):  # (≤ 0) / tiny τ → −inf is the intended one-hot limit
        logits = np.zeros_like(logn) if math.isinf(tau) else (logn - logn.max()) / tau
    if convention == "neox":
        logits = logits + _log_one_minus_share(sizes)
    return logits - logits.max()


def temperature_log_array(sizes: np.ndarray, tau: float, convention: Convention = "standard") -> np.ndarray:
    """log p with p_i ∝ n_i^(1/τ), exact for any τ > 0 and finite sizes > 0 (no underflow of p).

    log p = logits − log Σ exp(logits), with the logits of `_temperature_logits`.
    """
    logits = _temperature_logits(sizes, tau, convention)
    return logits - math.log(float(np.exp(logits).sum()))


def _log_one_minus_share(sizes: np.ndarray) -> np.ndarray:
    """log(1 − q_i), q_i = n_i / Σ n, in log space; a lone domain keeps factor 1.

    1 − q_i = Σ_{j≠i} n_j / Σ n. Only the largest domain can have q_i > 1/2: its complement is a
    logsumexp over the others (exact even when they are 1e-300 of it); for the rest log1p(−q_i)
    is accurate.
    """
    if len(sizes) == 1:
        return np.zeros(1)
    logn = np.log(sizes)
    top = int(np.argmax(logn))
    with np.errstate(divide="ignore"):  # q_top may round to 1; its entry is recomputed below
        out = np.log1p(-np.exp(logn - _logsumexp(logn)))
    out[top] = _logsumexp(np.delete(logn, top)) - _logsumexp(logn)
    return out


def _logsumexp(x: np.ndarray) -> float:
    m = float(x.max())
    return m + math.log(float(np.exp(x - m).sum()))


def temperature_array(sizes: np.ndarray, tau: float, convention: Convention = "standard") -> np.ndarray:
    """p ∝ n^(1/τ) on an aligned array, computed in log space (finite for any τ > 0)."""
    return normalise(np.exp(_temperature_logits(sizes, tau, convention)), "tau")


def temperature_probs(
    sizes: Sizes,
    tau: float | None = None,
    *,
    alpha: float | None = None,
    convention: Convention = "standard",
) -> dict[str, float]:
    """Temperature sampling, p_i = n_i^(1/τ) / Σ_j n_j^(1/τ) (Li et al. 2025, §2.1).

    Give ``tau`` or ``alpha = 1/τ`` by name. ``convention="neox"`` applies GPT-NeoX's extra
    (1 − q_i) factor. Any τ > 0 works (computed in log space); τ → 0 is one-hot on the largest.

    >>> p = temperature_probs({"en": 2733, "it": 162, "zh": 39, "sw": 1}, tau=5)
    >>> [round(v, 3) for v in p.values()]
    [0.454, 0.258, 0.194, 0.093]
    """
    names, arr = check_sizes(sizes)
    tau = _resolve_tau(tau, alpha)
    if convention not in ("standard", "neox"):
        raise ConfigError("convention", convention, "must be 'standard' or 'neox'")
    return to_mapping(names, temperature_array(arr, tau, convention))


def _resolve_tau(tau: Any, alpha: Any) -> float:
    if (tau is None) == (alpha is None):
        raise ConfigError("tau", tau, "give exactly one of tau= or alpha= (alpha = 1/tau)")
    if alpha is not None:
        a = check_float("alpha", alpha, lo=0.0)
        return math.inf if a == 0 else 1.0 / a  # 1/α overflows to inf only for subnormal α: uniform
    return check_tau(tau)


def proportional_probs(sizes: Sizes) -> dict[str, float]:
    """p_i = n_i / N (τ = 1): every unit of data equally likely.

    >>> proportional_probs({"a": 3, "b": 1})
    {'a': 0.75, 'b': 0.25}
    """
    names, arr = check_sizes(sizes)
    return to_mapping(names, normalise(arr, "sizes"))


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
    return to_mapping(names, normalise(arr, field))


def _check_weights(weights: Mapping[str, float], field: str) -> tuple[tuple[str, ...], np.ndarray]:
    if not isinstance(weights, Mapping) or not weights:
        raise ConfigError(field, weights, "must be a non-empty mapping of domain -> weight")
    names = tuple(weights)
    for n in names:
        if not isinstance(n, str) or not n:
            raise ConfigError(f"{field} key", n, "domain names must be non-empty strings")
    arr = np.array([check_float(f"{field}.{n}", weights[n], lo=0.0) for n in names])
    if not arr.max() > 0:
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
    budget = check_float("budget", budget, lo=0.0, lo_open=True)
    max_epochs = check_float("max_epochs", max_epochs, lo=0.0, lo_open=True, allow_inf=True)
    alloc = np.zeros_like(arr)
    remaining = budget
    order = np.argsort(arr, kind="stable")
    with np.errstate(over="ignore"):  # an overflowing cap (inf) simply does not bind
        for k, i in enumerate(order):
            share = remaining / (len(arr) - k)
            alloc[i] = max(min(share, max_epochs * arr[i]), 0.0)  # rounding never makes a share < 0
            remaining -= alloc[i]
        epochs = np.minimum(alloc / arr, max_epochs)  # subnormal sizes round cap·n_i; the cap holds
    if not alloc.max() > 0:
        raise ConfigError("budget", budget, "allocates nothing (budget or max_epochs × size underflows to 0)")
    check_finite("budget", epochs)  # a subnormal size with an uncapped share: > 1e308 epochs
    return UniMaxAllocation(
        budgets=to_mapping(names, alloc),
        epochs=to_mapping(names, epochs),
        probs=to_mapping(names, normalise(alloc, "budget")),
    )


def unimax_probs(sizes: Sizes, budget: float, max_epochs: float) -> dict[str, float]:
    """UniMax sampling probabilities (see `unimax`)."""
    return unimax(sizes, budget, max_epochs).probs


# ---------------------------------------------------------------------------------------------
# Distribution values: small frozen specs used by schedules, loss weights and configs.


class Distribution:
    """A named way to turn sizes into probabilities; a frozen value that serialises itself.

    Subclasses are dataclasses: `fields` (the config keys) and `to_dict` / `from_dict` derive
    from their dataclass fields, so `DISTRIBUTIONS` is the only table of kinds.
    """

    kind: ClassVar[str] = ""

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        """Probabilities aligned with ``names`` (validated inputs)."""
        raise NotImplementedError

    def log_array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        """log of `array` (−inf where p = 0); temperatures override it with exact log space."""
        with np.errstate(divide="ignore"):
            return np.log(self.array(names, sizes))

    def probs(self, sizes: Sizes) -> dict[str, float]:
        """Public form: mapping in, mapping out."""
        names, arr = check_sizes(sizes)
        return to_mapping(names, self.array(names, arr))

    @property
    def tau(self) -> float | None:
        """The temperature this distribution corresponds to, if any."""
        return None

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        """The keys its config table may hold besides ``kind``."""
        return tuple(f.name for f in dataclasses.fields(cast(Any, cls)) if f.init)  # dataclass subclasses

    def to_dict(self) -> dict[str, Any]:
        """``{"kind": ..., <field>: value}`` with τ = ∞ written as ``"inf"``."""
        return {"kind": self.kind, **{k: encode_inf(getattr(self, k)) for k in self.fields()}}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any], field: str = "distribution") -> Distribution:
        """Inverse of `to_dict` (``kind`` optional); an unknown key is named in the error."""
        args = {k: decode_inf(v) for k, v in d.items() if k != "kind"}
        extra = sorted(set(args) - set(cls.fields()))
        if extra:
            known = ", ".join(cls.fields()) or "none"
            why = f"unknown key for kind={cls.kind!r}; known: {known}"
            raise ConfigError(f"{field}.{extra[0]}", args[extra[0]], why)
        return cls._build(args)

    @classmethod
    def _build(cls, args: dict[str, Any]) -> Distribution:
        """The value from checked config keys (keys are dataclass fields unless overridden)."""
        return cls(**args)


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

    def log_array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        return temperature_log_array(sizes, self.value, self.convention)

    @property
    def tau(self) -> float:
        return self.value

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return ("tau", "alpha", "convention")

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"kind": self.kind, "tau": encode_inf(self.value)}
        if self.convention != "standard":
            d["convention"] = self.convention
        return d

    @classmethod
    def _build(cls, args: dict[str, Any]) -> Distribution:
        return cls(_resolve_tau(args.get("tau"), args.get("alpha")), args.get("convention", "standard"))


@dataclass(frozen=True)
class _FixedTau(Temperature):
    """A temperature with its τ fixed by the kind: no knobs, serialised as ``{"kind": ...}``."""

    @classmethod
    def fields(cls) -> tuple[str, ...]:
        return ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind}

    @classmethod
    def _build(cls, args: dict[str, Any]) -> Distribution:
        return cls()


@dataclass(frozen=True)
class Proportional(_FixedTau):
    """τ = 1."""

    value: float = 1.0
    kind: ClassVar[str] = "proportional"


@dataclass(frozen=True)
class Uniform(_FixedTau):
    """τ = ∞."""

    value: float = math.inf
    kind: ClassVar[str] = "uniform"


@dataclass(frozen=True, eq=True, unsafe_hash=False)
class Explicit(Distribution):
    """Given weights, normalised; domains missing from ``weights`` get 0."""

    weights: Mapping[str, float] = field(default_factory=dict)
    kind: ClassVar[str] = "explicit"

    def __post_init__(self) -> None:
        names, arr = _check_weights(self.weights, "weights")
        object.__setattr__(self, "weights", dict(zip(names, arr.tolist(), strict=True)))

    def check_names(self, names: tuple[str, ...], field: str = "weights") -> None:
        """Every weighted domain must be one of ``names`` (ConfigError naming the first unknown)."""
        unknown = [n for n in self.weights if n not in names]
        if unknown:
            raise ConfigError(field, unknown[0], f"unknown domain; known: {', '.join(names)}")

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        self.check_names(names)
        arr = np.array([self.weights.get(n, 0.0) for n in names])
        if not arr.max() > 0:
            raise ConfigError("weights", dict(self.weights), "weights of known domains sum to 0")
        return normalise(arr, "weights")

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
        budget = check_float("budget", self.budget, lo=0.0, lo_open=True)
        cap = check_float("max_epochs", self.max_epochs, lo=0.0, lo_open=True, allow_inf=True)
        object.__setattr__(self, "budget", budget)
        object.__setattr__(self, "max_epochs", cap)

    def array(self, names: tuple[str, ...], sizes: np.ndarray) -> np.ndarray:
        probs = unimax(dict(zip(names, sizes.tolist(), strict=True)), self.budget, self.max_epochs).probs
        return np.array([probs[n] for n in names])


DISTRIBUTIONS: dict[str, type[Distribution]] = {
    cls.kind: cls for cls in (Temperature, Proportional, Uniform, Explicit, UniMax)
}
"""kind -> Distribution class: the one table `as_distribution` reads."""

_NAMED = {"inf": Uniform, "uniform": Uniform, "proportional": Proportional}


def as_distribution(d: Any, field: str = "distribution") -> Distribution:
    """The one coercer: a `Distribution`, a τ number, ``"inf"``/``"uniform"``/``"proportional"``,
    or a table ``{"kind": ..., <fields>}`` (``kind`` may be omitted when ``tau``/``alpha`` is given).

    A number is read as a temperature (``1`` is ``Temperature(1.0)``, which gives the same
    probabilities as `Proportional`). A bad number is named ``field``; errors inside a table
    ``<field>.<key>``.

    >>> as_distribution({"kind": "temperature", "tau": 5})
    Temperature(value=5.0, convention='standard')
    >>> as_distribution("inf").to_dict(), as_distribution(2.0).tau
    ({'kind': 'uniform'}, 2.0)
    """
    if isinstance(d, Distribution):
        return d
    if isinstance(d, str):
        named = _NAMED.get(d.strip().lower())
        if named is not None:
            return named()
        raise ConfigError(field, d, "expected a tau number, 'inf', 'uniform', 'proportional' or a table")
    if isinstance(d, Mapping):
        kind = d.get("kind", "temperature" if ("tau" in d or "alpha" in d) else None)
        cls = DISTRIBUTIONS.get(kind) if isinstance(kind, str) else None
        if cls is None:
            raise ConfigError(f"{field}.kind", kind, f"must be one of {', '.join(DISTRIBUTIONS)}")
        try:
            return cls.from_dict(d, field)
        except ConfigError as e:
            if e.field.startswith(f"{field}."):
                raise
            raise ConfigError(f"{field}.{e.field}", e.value, e.why) from None
    if isinstance(d, bool) or not isinstance(d, (int, float, np.integer, np.floating)):
        raise ConfigError(field, d, "expected a tau number or a table with 'kind'")
    return Temperature(check_tau(d, field))

