"""`TrainConfig`: the trainer's typed, frozen config, one dataclass per TOML section.

Sections: ``[data]`` (CorpusSpec fields, validated by the data layer), ``[tokenizer]``,
``[model]`` (passed to ``build_model``), ``[task]`` (sequence lengths), ``[balance]`` (what is
sampled and what is optimised), ``[optim]`` and ``[run]``. Defaults live beside each field; the
attribute docstrings double as documentation. Unknown keys and bad values raise a one-line
`ConfigError` naming the dotted field (``run.total_steps=0: must be an integer > 0``).

This module imports no torch, so configs can be validated anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from coolmix.compositions import composition_name
from coolmix.config import apply_overrides, build, dump_toml, load_file, to_dict
from coolmix.distributions import Distribution, as_distribution
from coolmix.errors import ConfigError
from coolmix.sampler import MAX_BATCH
from coolmix.schedules import Schedule, schedule_from_dict
from coolmix.types import Composition
from coolmix.validate import check_float, check_int

__all__ = [
    "OPERATIONAL_FIELDS",
    "AdaptiveConfig",
    "BalanceConfig",
    "DiagnosticsConfig",
    "DoReMiConfig",
    "OptimConfig",
    "RunConfig",
    "TaskConfig",
    "TokenizerConfig",
    "TrainConfig",
    "config_hash",
    "load_config",
]

# Fields that change how a run is executed or recorded, not what it computes; they are left out
# of the config hash, so a run may be resumed with another `keep` or cache. One exception is
# deliberate: `run.threads` changes the order of float sums (measured: 6.7e-8 in the loss after
# 120 steps), yet a run moved to a machine with other cores must stay resumable. So it is not
# hashed but recorded: every checkpoint stores the effective thread count (and world size and
# device), and a resume under other values continues with one warning line saying that the
# continuation is no longer bit-exact (see `coolmix.train.loop`).
OPERATIONAL_FIELDS = frozenset(
    {
        "run.threads",
        "run.keep",
        "run.checkpoint_every",
        "run.log_every",
        "run.cache_dir",
        "run.tensorboard",
        "run.tune_malloc",
    }
)


MAX_SEED = 2**63 - 1
"""Largest ``run.seed``: torch's generators take a signed 64-bit seed."""
MAX_VOCAB = 1 << 20
"""Largest ``tokenizer.vocab_size`` (a 1M-entry softmax is far beyond what this trainer is for)."""
MAX_SEQ_LEN = 1 << 16
"""Largest ``task.seq_len`` / ``src_len`` / ``tgt_len`` in tokens."""
MAX_BEAM = 64
"""Largest ``task.beam_size`` (each beam is a full decoder pass per token)."""
MAX_VARIANCE_EXAMPLES = 100_000
"""Largest ``diagnostics.variance_examples`` (per-example gradients are computed one by one)."""


def memory_bytes() -> int | None:
    """Physical memory of this machine (None where the OS does not say)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, OSError, ValueError):
        return None


def max_threads() -> int:
    """Largest ``run.threads``: 4 × the CPUs of this machine, at most 1024 (more only adds stalls)."""
    return min(1024, 4 * (os.cpu_count() or 1))


@dataclass(frozen=True)
class TokenizerConfig:
    """The BPE tokenizer trained on the training split (cached by corpus fingerprint)."""

    vocab_size: int = 4000
    """Vocabulary size, language tags included. On CPU the output softmax dominates: keep 2–8k."""
    tau: float = 5.0
    """Temperature of the text mix the tokenizer is trained on, so small languages get merges."""
    seed: int = 0
    """Tokenizer seed; fixed apart from the run seed so that seeds of a grid share one vocabulary."""

    def __post_init__(self) -> None:
        check_int("tokenizer.vocab_size", self.vocab_size, lo=64, hi=MAX_VOCAB)
        check_float("tokenizer.tau", self.tau, 0.0, lo_open=True, allow_inf=True)
        check_int("tokenizer.seed", self.seed, lo=0, hi=MAX_SEED)


@dataclass(frozen=True)
class TaskConfig:
    """How text becomes fixed-size arrays (nothing is packed; one example = one line or pair)."""

    seq_len: int = 64
    """LM: tokens per example, ``<2xx> text <eos>`` truncated to this length (the tag is never a target)."""
    src_len: int = 48
    """MT: source tokens, ``text <eos>`` truncated to this length."""
    tgt_len: int = 48
    """MT: target tokens, ``text <eos>``, after the ``<2xx>`` tag that starts the decoder input."""
    decode_len: int = 0
    """MT: most tokens to generate when decoding dev/test (0: ``tgt_len``)."""
    beam_size: int = 1
    """MT: beam size for dev/test decoding (1: greedy)."""

    def __post_init__(self) -> None:
        for name in ("seq_len", "src_len", "tgt_len"):
            check_int(f"task.{name}", getattr(self, name), lo=2, hi=MAX_SEQ_LEN)
        check_int("task.decode_len", self.decode_len, lo=0, hi=MAX_SEQ_LEN)
        check_int("task.beam_size", self.beam_size, lo=1, hi=MAX_BEAM)


@dataclass(frozen=True)
class BalanceConfig:
    """What is sampled (``sample``) and what is optimised (``target``); Li et al. 2025 §2.

    - temperature sampling: ``sample = 5``, ``target = "none"`` (every loss weight is 1);
    - scalarization: ``sample = 1``, ``target = 5`` → w_i = p_5,i / p_1,i (Theorem 1);
    - Cooldown: ``sample = {kind = "cooldown", hot = 5, cold = 1, at = 0.5}``.

    With a scheduled ``sample`` and a ``target``, weights are recomputed whenever p(t) changes.
    """

    sample: Any = 1.0
    """Sampling schedule: a τ number, ``"inf"``, a distribution table or a schedule table."""
    target: Any = "none"
    """Distribution the loss is re-weighted towards (a τ number or table), or ``"none"``."""
    reduction: Literal["mean", "self_normalized", "sum"] = "mean"
    """How weighted per-example losses are reduced over the *global* batch (see `weighted_loss`)."""
    composition: Composition = "exact"
    """Per-batch domain counts: largest remainder (``exact``), O(1)-seekable arrivals
    (``seekable``) or independent draws (``iid``); see `coolmix.MixtureSampler`."""

    def __post_init__(self) -> None:
        self.schedule()
        self.target_dist()
        composition_name("balance.composition", self.composition)

    def schedule(self) -> Schedule:
        """The sampling schedule (raises ConfigError naming ``balance.sample``)."""
        with _field_prefix("balance.sample"):
            return schedule_from_dict(self.sample, "balance.sample")

    def target_dist(self) -> Distribution | None:
        """The re-weighting target, or None for plain sampling (all weights 1)."""
        if isinstance(self.target, str) and self.target == "none":
            return None
        with _field_prefix("balance.target"):
            return as_distribution(self.target, "balance.target")


@contextmanager
def _field_prefix(prefix: str) -> Iterator[None]:
    """Re-raise a core ConfigError (``tau=-1``) under the config field it came from."""
    try:
        yield
    except ConfigError as e:
        if e.field.startswith(prefix):
            raise
        raise ConfigError(f"{prefix}.{e.field}", e.value, e.why) from None


@dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup, then inverse-sqrt, cosine or constant learning rate."""

    lr: float = 1e-3
    """Peak learning rate (reached at the end of warmup)."""
    warmup: int = 100
    """Linear warmup steps from lr/warmup to lr."""
    schedule: Literal["inverse_sqrt", "cosine", "constant"] = "inverse_sqrt"
    """After warmup: lr·sqrt(warmup/step) (Vaswani et al.), cosine down to ``final_lr``, or flat."""
    final_lr: float = 0.1
    """Cosine only: the final lr as a fraction of ``lr``."""
    weight_decay: float = 0.01
    """Decoupled weight decay on matrices and embeddings (never on biases or norms)."""
    betas: tuple[float, ...] = (0.9, 0.98)
    """AdamW (β1, β2)."""
    eps: float = 1e-8
    """AdamW ε."""
    clip: float = 1.0
    """Clip the global gradient norm to this value (0: no clipping)."""
    label_smoothing: float = 0.0
    """Label smoothing of the per-token cross-entropy."""

    def __post_init__(self) -> None:
        check_float("optim.lr", self.lr, 0.0, 10.0, lo_open=True)
        check_int("optim.warmup", self.warmup, lo=0)
        check_float("optim.final_lr", self.final_lr, 0.0, 1.0)
        check_float("optim.weight_decay", self.weight_decay, 0.0, 10.0)
        if len(self.betas) != 2 or not all(0.0 <= b < 1.0 for b in self.betas):
            raise ConfigError("optim.betas", list(self.betas), "must be two numbers in [0, 1)")
        check_float("optim.eps", self.eps, 0.0, 1.0, lo_open=True)
        check_float("optim.clip", self.clip, 0.0)
        check_float("optim.label_smoothing", self.label_smoothing, 0.0, 0.999)


@dataclass(frozen=True)
class RunConfig:
    """Run length, batching, evaluation, checkpoints and execution settings."""

    total_steps: int = 1000
    """Optimizer steps. Fractional schedule boundaries (Cooldown ``at = 0.5``) are fractions of this."""
    batch_size: int = 32
    """Global batch size in examples (split evenly over ranks under torchrun)."""
    seed: int = 0
    """Seed of the sampler, the model init and dropout (counter-based per step and rank)."""
    eval_every: int = 200
    """Evaluate on dev every this many steps (and always at the end)."""
    eval_batches: int = 4
    """Dev/test batches (of ``batch_size``) evaluated per domain; 0: the whole split."""
    max_decode: int = 100
    """MT: dev/test sentences decoded per language for chrF/BLEU (0: no decoding)."""
    test: bool = True
    """Evaluate the test split at the end."""
    checkpoint_every: int = 0
    """Checkpoint every this many steps (0: at every eval); always at the end."""
    keep: int = 2
    """Checkpoints kept (the newest)."""
    bf16: bool = False
    """bfloat16 autocast for forward and loss (CPUs with avx512_bf16 gain 1.3–1.6×)."""
    threads: int = 0
    """torch.set_num_threads for this run (0: leave torch's setting)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto``: CUDA when available (NCCL under torchrun), else CPU (gloo)."""
    log_every: int = 10
    """Console progress refresh interval in steps (metrics.jsonl gets one record per eval)."""
    tensorboard: bool = False
    """Also write TensorBoard scalars to ``<out>/tb`` (needs the ``tensorboard`` package)."""
    tune_malloc: bool = True
    """CPU with glibc: keep freed memory in the heap (``mallopt``), so each step's large logits and
    gradient buffers reuse pages instead of being mapped and faulted in afresh (10–45% faster
    steps measured). Process-wide and permanent; the process keeps its peak memory."""
    cache_dir: str = ""
    """Where corpora and tokenizers are cached on disk ("": the data layer's default)."""

    def __post_init__(self) -> None:
        check_int("run.total_steps", self.total_steps, lo=1)
        check_int("run.batch_size", self.batch_size, lo=1, hi=MAX_BATCH)
        check_int("run.seed", self.seed, lo=0, hi=MAX_SEED)
        check_int("run.eval_every", self.eval_every, lo=1)
        for name in ("eval_batches", "max_decode", "checkpoint_every"):
            check_int(f"run.{name}", getattr(self, name), lo=0)
        check_int("run.threads", self.threads, lo=0, hi=max_threads())
        check_int("run.keep", self.keep, lo=1)
        check_int("run.log_every", self.log_every, lo=1)

    @property
    def checkpoint_interval(self) -> int:
        return self.checkpoint_every or self.eval_every


@dataclass(frozen=True)
class AdaptiveConfig:
    """Adaptive Cooldown: when to record the schedule's switch event (``balance.sample`` of kind
    ``adaptive``). The overfitting detector watches held-out losses after every eval."""

    domains: tuple[str, ...] = ()
    """Domains to watch; empty: the low-resource ones (< 40% of the largest training set)."""
    mode: Literal["any", "all"] = "any"
    """Switch when any / all watched domains are flagged."""
    margin: float = 0.01
    """Flag when the (smoothed) dev loss exceeds its minimum by this relative margin..."""
    patience: int = 2
    """...for this many consecutive evals."""
    min_evals: int = 3
    """Evals needed before a domain can be flagged."""
    smoothing: float = 0.3
    """EMA weight of the past in the smoothed dev loss (0: none)."""
    max_epochs: float = 0.0
    """Also switch when a watched domain has been seen this many epochs (0: off)."""
    event: str = "cooldown"
    """Event name the adaptive schedule listens to."""

    def __post_init__(self) -> None:
        check_float("adaptive.margin", self.margin, 0.0, 10.0)
        check_int("adaptive.patience", self.patience, lo=1)
        check_int("adaptive.min_evals", self.min_evals, lo=1)
        check_float("adaptive.smoothing", self.smoothing, 0.0, 0.999)
        check_float("adaptive.max_epochs", self.max_epochs, 0.0, 1e12)


@dataclass(frozen=True)
class DoReMiConfig:
    """DoReMi proxy training (Xie et al. 2023): Group-DRO weights against a reference run."""

    reference: str = ""
    """Run directory of the reference model (empty: this is not a DoReMi proxy run)."""
    eta: float = 1.0
    """Exponentiated-gradient step size of the domain-weight update."""
    smoothing: float = 1e-3
    """Mix of the uniform distribution into the weights after each update."""

    def __post_init__(self) -> None:
        check_float("doremi.eta", self.eta, 0.0, 100.0, lo_open=True)
        check_float("doremi.smoothing", self.smoothing, 0.0, 0.999)


@dataclass(frozen=True)
class DiagnosticsConfig:
    """Live diagnostics logged to the metrics (they never change training)."""

    variance_every: int = 0
    """Measure per-domain gradient second moments every this many steps (0: only at evals if
    ``variance_examples`` > 0 and never otherwise)."""
    variance_examples: int = 0
    """Training examples per domain for the gradient-variance monitor (0: off)."""
    overfit_margin: float = 0.01
    """Overfitting-detector margin for the per-domain flags logged with every eval."""
    overfit_patience: int = 2
    """Overfitting-detector patience (evals) for the logged flags."""

    def __post_init__(self) -> None:
        check_int("diagnostics.variance_every", self.variance_every, lo=0)
        check_int("diagnostics.variance_examples", self.variance_examples, lo=0, hi=MAX_VARIANCE_EXAMPLES)
        check_float("diagnostics.overfit_margin", self.overfit_margin, 0.0, 10.0)
        check_int("diagnostics.overfit_patience", self.overfit_patience, lo=1)


@dataclass(frozen=True)
class TrainConfig:
    """One training run. Build with `TrainConfig.from_dict` / `load_config`, never by hand-parsing."""

    data: dict[str, Any] = field(default_factory=dict)
    """CorpusSpec fields (name, langs, train_sizes | ratios + max_train, dev_size, test_size, ...)."""
    tokenizer: TokenizerConfig = field(default_factory=TokenizerConfig)
    model: dict[str, Any] = field(default_factory=dict)
    """Passed to ``build_model(task, model, vocab_size)``."""
    task: TaskConfig = field(default_factory=TaskConfig)
    balance: BalanceConfig = field(default_factory=BalanceConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)
    adaptive: AdaptiveConfig = field(default_factory=AdaptiveConfig)
    doremi: DoReMiConfig = field(default_factory=DoReMiConfig)
    diagnostics: DiagnosticsConfig = field(default_factory=DiagnosticsConfig)

    def __post_init__(self) -> None:
        if not self.data:
            raise ConfigError("data", self.data, "a [data] table (at least name and langs) is required")
        self.corpus_spec()
        self._check_data_counts()
        self._check_batch_memory()

    def _check_data_counts(self) -> None:
        """``[data]`` counts bounded by `MAX_INT`, here at parse time (after the corpus layer's checks).

        The corpus layer checks only the lower bounds, so ``data.max_train=10**30`` would pass
        and fail late, deep in corpus building; every count must fit int64 arithmetic.
        """
        d = self.data
        if d.get("max_train") is not None:
            check_int("data.max_train", d["max_train"], lo=1)
        for name in ("dev_size", "test_size"):
            if d.get(name) is not None:
                check_int(f"data.{name}", d[name], lo=0)
        for lang, n in (d.get("train_sizes") or {}).items():
            check_int(f"data.train_sizes.{lang}", n, lo=1)

    def _check_batch_memory(self) -> None:
        """Refuse a batch whose logits alone cannot fit in this machine's memory.

        The B·T·V logits, their gradient and the log-softmax take ≈ 12·B·T·V bytes in fp32
        (T: the longest of ``task.seq_len``/``tgt_len``, V: ``tokenizer.vocab_size``); checked
        here, before any corpus is built, instead of failing inside torch.
        """
        have = memory_bytes()
        t = max(self.task.seq_len, self.task.tgt_len)
        need = 12 * self.run.batch_size * t * self.tokenizer.vocab_size
        if have is not None and need > have:
            raise ConfigError(
                "run.batch_size",
                self.run.batch_size,
                f"with {t} tokens per example and tokenizer.vocab_size={self.tokenizer.vocab_size} "
                f"the logits alone need ~{need / 2**30:.0f} GiB; this machine has {have / 2**30:.0f} GiB",
            )

    def corpus_spec(self) -> Any:
        """``[data]`` as a `coolmix.data.CorpusSpec` (errors name the ``data.`` field)."""
        from coolmix.data import CorpusSpec

        try:
            return CorpusSpec.from_dict(self.data)
        except ConfigError as e:
            field = e.field.removeprefix("corpus.").removeprefix("data.")
            raise ConfigError(f"data.{field}", e.value, e.why) from None

    @staticmethod
    def from_dict(d: Mapping[str, Any]) -> TrainConfig:
        return build(TrainConfig, d)

    def as_dict(self) -> dict[str, Any]:
        """Plain nested dict (TOML/JSON-able); `from_dict(as_dict())` gives an equal config."""
        return to_dict(self)

    def replace(self, **sections: Any) -> TrainConfig:
        """A copy with whole sections replaced, or dotted overrides via ``overrides=[...]``."""
        overrides: Sequence[str] = sections.pop("overrides", ())
        d = self.as_dict()
        d.update({k: to_dict(v) for k, v in sections.items()})
        return TrainConfig.from_dict(apply_overrides(d, overrides))

    def to_toml(self) -> str:
        return dump_toml(self.as_dict())


def load_config(path: str | Path | Mapping[str, Any], overrides: Sequence[str] = ()) -> TrainConfig:
    """A TOML/YAML file (or a dict) plus ``a.b=value`` overrides -> validated `TrainConfig`.

    >>> cfg = load_config({"data": {"name": "bible", "langs": ["en", "sw"]}}, ["run.total_steps=50"])
    >>> cfg.run.total_steps, cfg.balance.reduction
    (50, 'mean')
    """
    raw = load_file(path) if isinstance(path, (str, Path)) else dict(path)
    return TrainConfig.from_dict(apply_overrides(raw, overrides))


def config_hash(cfg: TrainConfig) -> str:
    """SHA-256 (16 hex digits) of the resolved config minus `OPERATIONAL_FIELDS`.

    Two configs with the same hash compute the same trajectory, so a checkpoint may be resumed
    only under the hash it was written with.
    """
    d = cfg.as_dict()
    for dotted in OPERATIONAL_FIELDS:
        section, key = dotted.split(".")
        d.get(section, {}).pop(key, None)
    blob = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]
