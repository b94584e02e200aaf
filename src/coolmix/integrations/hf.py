"""Hugging Face ``transformers.Trainer`` integration: a coolmix-fed, loss-weighted, resumable Trainer.

``transformers`` is imported only when `MixtureTrainer` or `CoolmixCallback` is first accessed, so
``import coolmix.integrations.hf`` costs torch only (the collator and batch sampler need no
``transformers``). Without it, accessing the classes raises a `ConfigError` saying
``pip install coolmix[hf]``.

Usage (a literal block, not a doctest)::

    trainer = MixtureTrainer(
        model,
        TrainingArguments("out", max_steps=1000, per_device_train_batch_size=8,
                          gradient_accumulation_steps=4, save_steps=200),
        train_datasets={"en": en_ds, "sw": sw_ds},          # per-domain datasets.Dataset
        schedule=cm.Cooldown(hot=100, cold=3.33, at=0.2),   # how batches are sampled
        target=5.0,            # optional: weight losses by p_target,i / p_sample,i(t)
        eval_dataset={"en": en_dev, "sw": sw_dev},          # -> eval_en_loss, eval_sw_loss
    )
    trainer.train()            # later: trainer.train(resume_from_checkpoint=True)

**What one sampler step is.** One `MixtureSampler` step is one *optimizer* step. Its global batch of
B = ``per_device_train_batch_size × gradient_accumulation_steps × world_size`` examples is cut into
contiguous per-rank slices (`MixtureSampler.batch(step, rank, world_size)`), and each rank's slice
into ``gradient_accumulation_steps`` micro-batches, in order (`MicroBatchSampler`). The stream is
a function of B only, so a run resumed with another (accumulation, world size) split of the same B
continues the same stream. ``TrainingArguments.max_steps`` must be set (it is the sampler's
``total_steps``, which time-keyed schedules such as Cooldown need).

**Loss.** `MixtureTrainer.compute_loss` computes per-token cross-entropy itself (labels shifted for
causal LMs), reduces it per example and applies `coolmix.weighted_loss` with per-domain weights:
static ``loss_weights`` (e.g. `coolmix.scalarization_weights`), or ``target``, giving
w_i(t) = p_target,i / p_sample,i(t) against the sampler's own p(t) at each step (scalarization
and any hybrid: τ-sampling plus weights, or Cooldown plus weights), or none (all 1). With
``unit="token"`` the optimizer step minimises Σ_b w_b Σ_t ℓ_bt / N over the *global* batch, with
N = Σ_b n_b (``reduction="mean"``) or Σ_b w_b n_b (``"self_normalized"``), n_b the target tokens
of example b; with ``unit="sequence"``, Σ_b w_b ℓ̄_b / N with N = B or Σ_b w_b (ℓ̄_b the example's
token mean). N is computed once per optimizer step from every micro-batch of every rank (one
``gather``), so the sum of the micro-batch losses is exactly the full global-batch loss, whatever
the accumulation and padding (the naive per-micro-batch mean ÷ accumulation is not, for tokens or
self-normalised weights). Evaluation losses are unweighted (plain token or sequence means), so
per-domain eval losses compare across methods.

**Resume.** Each Trainer checkpoint gets ``coolmix_sampler.json`` (`STATE_FILE`): the core sampler
state after ``global_step`` steps plus the `ExposureLedger`, written by `CoolmixCallback.on_save`.
``train(resume_from_checkpoint=...)`` loads it, so the data stream continues at that step with no
replay, and ``TrainingArguments.ignore_data_skip`` is forced to True so the Trainer does not also
skip batches. (A checkpoint without the file, e.g. from a plain Trainer, is replayed from the
seed up to its step with a warning; events recorded during the run are then lost.) The training
DataLoader's ``len`` is the whole run's micro-batch count, so the Trainer plans one epoch of
``max_steps`` updates; a resumed run yields the remaining ones and stops at ``max_steps``
(``state.epoch`` counts from the resume point: exposure in epochs is the ledger's, per domain).

**Logs.** Each training log record gets ``coolmix/tau`` (τ in force, when the schedule has one)
and per domain ``coolmix/<d>/{share,target_share,epochs,max_repeats,examples,tokens,train_loss}``
and ``coolmix/<d>/weight`` when weighting; evaluating a dict ``eval_dataset`` gives HF's
``eval_<d>_loss`` plus ``eval_macro_loss`` and ``eval_worst_loss``.

Scope: data parallelism through the Trainer's own launcher (torchrun DDP; tested with 2 CPU
processes on gloo; FSDP and DeepSpeed average gradients the same way but are untested here); not
``nn.DataParallel`` (``n_gpu > 1`` in one process), ``auto_find_batch_size``, or tensor/context
parallel splits of one batch. Tested with transformers 5.24 and 4.57.
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Sampler

from coolmix.diagnostics.ledger import ExposureLedger
from coolmix.distributions import Distribution, Proportional, Temperature, check_tau
from coolmix.errors import ConfigError
from coolmix.integrations.torch import (
    DOMAIN_KEY,
    DOMAIN_NAME_KEY,
    INDEX_KEY,
    MixtureBatchSampler,
    MixtureCollator,
    MixtureDataset,
)
from coolmix.sampler import MixtureSampler
from coolmix.schedule import Schedule
from coolmix.weighting import weighted_loss, weights_array

__all__ = [
    "STATE_FILE",
    "CoolmixCallback",  # noqa: F822 - built on first access (module __getattr__)
    "MicroBatchSampler",
    "MixtureTrainer",  # noqa: F822
    "PadCollator",
    "per_example_loss",
]

STATE_FILE = "coolmix_sampler.json"
STATE_FORMAT = 1
IGNORE_INDEX = -100
REDUCTIONS = ("mean", "self_normalized")
UNITS = ("token", "sequence")
_LAZY = ("MixtureTrainer", "CoolmixCallback")


def __getattr__(name: str) -> Any:
    """Build the ``transformers``-dependent classes on first access (PEP 562)."""
    if name in _LAZY:
        return _classes()[name]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _transformers() -> Any:
    try:
        import transformers
    except ImportError:
        raise ConfigError(
            "transformers", "not installed", "pip install coolmix[hf] (transformers, accelerate, datasets)"
        ) from None
    return transformers


# -- pieces that need torch only ---------------------------------------------------------------------


class PadCollator:
    """Right-pads a list of dict examples into tensors; the default ``data_collator`` of `MixtureTrainer`.

    ``input_ids`` is padded with ``pad_token_id``, ``attention_mask`` (made from the lengths when
    absent) with 0, ``labels`` with -100; without ``labels``, they are ``input_ids`` with padding
    masked to -100 (causal-LM training; set ``make_labels=False`` to leave them out). Other
    sequence fields are padded with 0, scalars stacked, anything else (strings) kept as a list.

    >>> b = PadCollator(pad_token_id=0)([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])
    >>> b["input_ids"].tolist(), b["labels"].tolist(), b["attention_mask"].tolist()
    ([[5, 6, 7], [8, 0, 0]], [[5, 6, 7], [8, -100, -100]], [[1, 1, 1], [1, 0, 0]])
    """

    def __init__(
        self, pad_token_id: int = 0, make_labels: bool = True, pad_to_multiple_of: int | None = None
    ) -> None:
        self.pad_token_id = int(pad_token_id)
        self.make_labels = make_labels
        if pad_to_multiple_of is not None and (
            isinstance(pad_to_multiple_of, bool)
            or not isinstance(pad_to_multiple_of, int)
            or pad_to_multiple_of < 1
        ):
            raise ConfigError("pad_to_multiple_of", pad_to_multiple_of, "must be an integer >= 1")
        self.pad_to_multiple_of = pad_to_multiple_of

    def _pad_value(self, key: str) -> int:
        return {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX}.get(key, 0)

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not examples or not isinstance(examples[0], Mapping):
            raise ConfigError(
                "examples", type(examples).__name__, "PadCollator takes a list of dict examples"
            )
        out: dict[str, Any] = {}
        lengths: list[int] | None = None
        for key in examples[0]:
            values = [ex[key] for ex in examples]
            first = values[0]
            if isinstance(first, str) or (
                isinstance(first, (list, tuple)) and first and isinstance(first[0], str)
            ):
                out[key] = values
                continue
            tensors = [torch.as_tensor(v) for v in values]
            if tensors[0].dim() == 0:
                out[key] = torch.stack(tensors)
                continue
            lens = [t.shape[0] for t in tensors]
            width = max(lens)
            if self.pad_to_multiple_of:
                width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
            padded = tensors[0].new_full((len(tensors), width, *tensors[0].shape[1:]), self._pad_value(key))
            for row, t in enumerate(tensors):
                padded[row, : t.shape[0]] = t
            out[key] = padded
            if key == "input_ids":
                lengths = lens
        if lengths is not None:
            ids = out["input_ids"]
            if "attention_mask" not in out:
                pos = torch.arange(ids.shape[1])
                out["attention_mask"] = (pos[None, :] < torch.tensor(lengths)[:, None]).long()
            if "labels" not in out and self.make_labels:
                out["labels"] = ids.masked_fill(out["attention_mask"] == 0, IGNORE_INDEX)
        return out


class MicroBatchSampler(Sampler[list[int]]):
    """One sampler step = ``accumulation_steps`` micro-batches of this rank's slice, in order.

    Wraps a `MixtureBatchSampler` (per step: this rank's contiguous slice of the global batch,
    as flat indices into a `MixtureDataset`) and cuts each slice into ``accumulation_steps``
    consecutive micro-batches of ``micro_batch_size``. ``len`` is the whole run's micro-batch
    count (``total_steps × accumulation_steps``) whatever the position; iteration starts at the
    loaded step. ``state_dict(step)`` is the core sampler state after ``step`` steps consumed.

    >>> s = MixtureSampler({"a": 10, "b": 3}, 1.0, total_steps=2, batch_size=4)
    >>> mb = MicroBatchSampler(s, micro_batch_size=2, accumulation_steps=2, rank=0, world_size=1)
    >>> len(mb), [len(b) for b in mb]
    (4, [2, 2, 2, 2])
    """

    def __init__(
        self,
        sampler: MixtureSampler,
        micro_batch_size: int,
        accumulation_steps: int = 1,
        rank: int | None = None,
        world_size: int | None = None,
        *,
        dataset: MixtureDataset | None = None,
    ) -> None:
        for field, v in (("micro_batch_size", micro_batch_size), ("accumulation_steps", accumulation_steps)):
            if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < 1:
                raise ConfigError(field, v, "must be an integer >= 1")
        self.inner = MixtureBatchSampler(sampler, rank, world_size, dataset=dataset)
        self.micro_batch_size, self.accumulation_steps = int(micro_batch_size), int(accumulation_steps)
        if self.inner.batch_size != self.micro_batch_size * self.accumulation_steps:
            raise ConfigError(
                "micro_batch_size",
                micro_batch_size,
                f"× accumulation_steps={accumulation_steps} must equal the per-rank batch "
                f"{self.inner.batch_size} (sampler batch_size / world_size)",
            )

    @property
    def sampler(self) -> MixtureSampler:
        return self.inner.sampler

    def __len__(self) -> int:
        return self.inner.sampler.total_steps * self.accumulation_steps

    def __iter__(self) -> Iterator[list[int]]:
        m = self.micro_batch_size
        for flat in self.inner:
            for k in range(self.accumulation_steps):
                yield flat[k * m : (k + 1) * m]

    def state_dict(self, step: int | None = None) -> dict[str, Any]:
        return self.inner.state_dict(step=step)

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state_dict(state)


def per_example_loss(
    logits: torch.Tensor, labels: torch.Tensor, shift: bool, label_smoothing: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Σ_t ℓ_bt, n_b): per-example summed cross-entropy and target-token counts (labels -100 skipped).

    ``shift``: position t predicts label t+1 (causal LMs). 2-D logits (B, C) with labels (B,) are
    one target per example (sequence classification).
    """
    if logits.dim() == 2:
        ce = F.cross_entropy(
            logits.float(),
            labels,
            ignore_index=IGNORE_INDEX,
            reduction="none",
            label_smoothing=label_smoothing,
        )
        return ce, (labels != IGNORE_INDEX).to(ce.dtype)
    if shift:
        logits, labels = logits[:, :-1], labels[:, 1:]
    ce = F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]).float(),
        labels.reshape(-1).to(logits.device),
        ignore_index=IGNORE_INDEX,
        reduction="none",
        label_smoothing=label_smoothing,
    ).view(labels.shape)
    return ce.sum(-1), (labels != IGNORE_INDEX).sum(-1).to(ce.dtype)


def _target_counts(labels: torch.Tensor, shift: bool) -> torch.Tensor:
    """n_b without a forward pass (the normaliser is known before the first micro-batch runs)."""
    if labels.dim() == 1:
        return (labels != IGNORE_INDEX).long()
    if shift:
        labels = labels[:, 1:]
    return (labels != IGNORE_INDEX).sum(-1).long()


def _as_distribution(d: Distribution | float, field: str) -> Distribution:
    if isinstance(d, Distribution):
        return d
    if isinstance(d, (int, float, np.integer, np.floating)) and not isinstance(d, bool):
        tau = check_tau(d, field)
        return Proportional() if tau == 1 else Temperature(tau)
    raise ConfigError(field, d, "must be a coolmix Distribution or a temperature number")


def _write_json(path: Path, data: Any) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True))
    os.replace(tmp, path)


# -- the transformers classes, built on first access ----------------------------------------------


@functools.cache
def _classes() -> dict[str, type]:
    transformers = _transformers()
    from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

    try:
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        causal_names = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    except ImportError:  # pragma: no cover - layout change
        causal_names = set()

    class CoolmixCallback(transformers.TrainerCallback):
        """Persists the sampler and ledger in every checkpoint; added by `MixtureTrainer` itself.

        ``on_save`` writes `STATE_FILE` into ``<output_dir>/checkpoint-<global_step>`` (main process
        only, atomically). The log entries (`MixtureTrainer.coolmix_metrics`) are merged into the
        Trainer's own records by `MixtureTrainer.log`: a callback's ``on_log`` runs after
        ``log_history`` is written and after the reporting integrations, so keys it added would
        reach neither.
        """

        def __init__(self, trainer: Any = None) -> None:
            self.trainer = trainer

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.trainer is None or not args.should_save:
                return
            folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
            if not folder.is_dir():
                warnings.warn(
                    f"coolmix: checkpoint folder {folder} not found; sampler state not saved", stacklevel=2
                )
                return
            self.trainer.save_coolmix_state(folder)

    class MixtureTrainer(transformers.Trainer):
        """``transformers.Trainer`` fed by a coolmix sampler over per-domain datasets, with loss weights.

        Arguments beyond the Trainer's (which it takes as usual, except ``train_dataset`` and
        ``compute_loss_func``):

        - ``train_datasets``: name → map-style dataset (``datasets.Dataset`` or any indexable of
          dicts); its order defines the domain ids. Columns the model's ``forward`` does not take
          are dropped as the Trainer does (``remove_unused_columns``).
        - ``schedule``: the sampling schedule (`Schedule`, τ number or config mapping); ``seed``
          (default ``args.data_seed`` or ``args.seed``) and ``composition`` as in `MixtureSampler`.
        - ``loss_weights`` (name → w_i, static) or ``target`` (`Distribution` or τ: w_i(t) =
          p_target,i / p_sample,i(t)); neither: all weights 1.
        - ``reduction`` ``"mean"`` | ``"self_normalized"`` and ``unit`` ``"token"`` | ``"sequence"``
          (module docstring); ``shift_labels`` (default: True for causal-LM classes).
        - ``data_collator`` pads examples (default `PadCollator` with the tokenizer's or config's pad
          id); training batches also carry ``domain`` (LongTensor), ``index`` and ``domain_name``.

        During/after ``train()``: ``coolmix_sampler`` (the producer, which runs ahead of the loop
        by the DataLoader's prefetch; record events on it), ``coolmix_ledger`` (consumed global
        batches) and ``coolmix_callback``.
        """

        # compute_loss normalises over the whole accumulated global batch itself
        loss_is_scaled_for_ga = True

        def __init__(
            self,
            model: Any = None,
            args: Any = None,
            *,
            train_datasets: Mapping[str, Any],
            schedule: Schedule | float | Mapping[str, Any] = 1.0,
            loss_weights: Mapping[str, float] | None = None,
            target: Distribution | float | None = None,
            reduction: str = "mean",
            unit: str = "token",
            seed: int | None = None,
            composition: str = "exact",
            shift_labels: bool | None = None,
            data_collator: Callable[[list[Any]], Any] | None = None,
            **kwargs: Any,
        ) -> None:
            for banned in ("train_dataset", "compute_loss_func"):
                if kwargs.get(banned) is not None:
                    raise ConfigError(banned, type(kwargs[banned]).__name__, "MixtureTrainer sets it itself")
                kwargs.pop(banned, None)
            if reduction not in REDUCTIONS:
                raise ConfigError("reduction", reduction, f"must be one of {REDUCTIONS}")
            if unit not in UNITS:
                raise ConfigError("unit", unit, f"must be one of {UNITS}")
            if loss_weights is not None and target is not None:
                raise ConfigError(
                    "loss_weights", "and target", "give static loss_weights or a target, not both"
                )
            raw = MixtureDataset(train_datasets)  # validates names and lengths
            if data_collator is None:
                data_collator = PadCollator(_pad_id(model, kwargs.get("processing_class")))
            super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=raw, **kwargs)
            a = self.args
            if a.max_steps is None or a.max_steps <= 0:
                raise ConfigError(
                    "args.max_steps", a.max_steps, "set max_steps: it is the sampler's total_steps"
                )
            if a.n_gpu > 1:
                raise ConfigError(
                    "args.n_gpu", a.n_gpu, "nn.DataParallel is not supported; launch with torchrun"
                )
            if a.auto_find_batch_size:
                raise ConfigError(
                    "args.auto_find_batch_size", True, "the global batch fixes the mixture stream"
                )
            a.ignore_data_skip = True  # the sampler state resumes the stream; the Trainer must not skip too
            # transformers < 5 decides "loss already scaled for accumulation" from this flag
            self.model_accepts_loss_kwargs = True
            self.coolmix_reduction, self.coolmix_unit = reduction, unit
            self.coolmix_seed = int(
                seed if seed is not None else (a.data_seed if a.data_seed is not None else a.seed)
            )
            self.coolmix_composition = composition
            self.coolmix_schedule = schedule
            self._coolmix_raw = raw
            names = raw.names
            self._coolmix_static_w: np.ndarray | None = None
            self._coolmix_target: np.ndarray | None = None
            if loss_weights is not None:
                w = weights_array(loss_weights, names)
                if isinstance(loss_weights, Mapping) and set(loss_weights) - set(names):
                    extra = sorted(set(loss_weights) - set(names))
                    raise ConfigError("loss_weights", extra, f"unknown domains; known: {list(names)}")
                if not np.isfinite(w).all() or (w < 0).any():
                    raise ConfigError("loss_weights", dict(zip(names, w.tolist())), "must be finite and >= 0")
                self._coolmix_static_w = w
            if target is not None:
                sizes = np.array([float(n) for n in raw.sizes.values()])
                self._coolmix_target = _as_distribution(target, "target").array(names, sizes)
            self._coolmix_shift = self._detect_shift() if shift_labels is None else bool(shift_labels)
            # validates the schedule and sizes now, not at train(); gives p(t) before train() too
            self._coolmix_probe = self.make_sampler()
            self.coolmix_sampler: MixtureSampler | None = None
            self.coolmix_batch_sampler: MicroBatchSampler | None = None
            self.coolmix_ledger: ExposureLedger | None = None
            self.coolmix_callback = CoolmixCallback(self)
            self.add_callback(self.coolmix_callback)
            self._coolmix_resume: str | None = None
            self._coolmix_w_key: tuple[float, ...] | None = None
            self._coolmix_w = np.ones(len(names))
            self._coolmix_step_w: torch.Tensor | None = None
            self._coolmix_loss_stats = torch.zeros(2, len(names), dtype=torch.float64)

        # -- setup ------------------------------------------------------------------------------

        @property
        def coolmix_names(self) -> tuple[str, ...]:
            return self._coolmix_raw.names

        def _detect_shift(self) -> bool:
            model = self.model
            if hasattr(model, "get_base_model"):  # PEFT
                model = model.get_base_model()
            if getattr(getattr(model, "config", None), "is_encoder_decoder", False):
                return False
            return type(model).__name__ in causal_names

        def make_sampler(self) -> MixtureSampler:
            """A fresh `MixtureSampler` for this run: one step per optimizer step (module docstring)."""
            a = self.args
            world = max(1, a.world_size)
            return MixtureSampler(
                self._coolmix_raw.sizes,
                self.coolmix_schedule,
                total_steps=a.max_steps,
                batch_size=a.per_device_train_batch_size * a.gradient_accumulation_steps * world,
                seed=self.coolmix_seed,
                composition=self.coolmix_composition,
            )

        def _mixture(self) -> MixtureDataset:
            """The concatenated view, unused columns removed from HF Datasets as the Trainer does."""
            try:
                import datasets as hfds
            except ImportError:  # pragma: no cover - datasets is a transformers dependency
                hfds = None
            remove = getattr(self, "_remove_unused_columns", None)
            parts = {}
            for name, ds in zip(self._coolmix_raw.names, self._coolmix_raw.datasets):
                if hfds is not None and isinstance(ds, hfds.Dataset) and remove is not None:
                    ds = remove(ds, description=f"training ({name})")
                parts[name] = ds
            return MixtureDataset(parts)

        def train(
            self, resume_from_checkpoint: str | bool | None = None, trial: Any = None, **kwargs: Any
        ) -> Any:
            """``Trainer.train``; remembers the checkpoint, so the stream resumes from its sampler state."""
            path = resume_from_checkpoint
            if path is True:
                path = get_last_checkpoint(self.args.output_dir)
                if path is not None:  # none found: pass True on, and the Trainer raises its own error
                    resume_from_checkpoint = path
            elif path is False:
                path = resume_from_checkpoint = None
            self._coolmix_resume = None if path is None else os.fspath(path)
            try:
                return super().train(resume_from_checkpoint=resume_from_checkpoint, trial=trial, **kwargs)
            finally:
                self._coolmix_resume = None

        def get_train_dataloader(self) -> DataLoader:
            """A DataLoader over the per-domain datasets driven by a fresh (or resumed) coolmix sampler.

            Not passed through ``accelerator.prepare``: the batch sampler is already rank-aware
            (its wrapper would shard it again), and ``training_step`` moves inputs to the device.
            """
            a = self.args
            mixture = self._mixture()
            self.train_dataset = mixture
            sampler = self.make_sampler()
            rank, world = (a.process_index, a.world_size) if a.world_size > 1 else (0, 1)
            batches = MicroBatchSampler(
                sampler,
                a.per_device_train_batch_size,
                a.gradient_accumulation_steps,
                rank,
                world,
                dataset=mixture,
            )
            ledger = ExposureLedger(mixture.sizes)
            if self._coolmix_resume is not None:
                self._load_coolmix_state(Path(self._coolmix_resume), batches, ledger)
            self.coolmix_sampler, self.coolmix_batch_sampler, self.coolmix_ledger = sampler, batches, ledger
            self._coolmix_w_key, self._coolmix_step_w = None, None
            self._coolmix_loss_stats.zero_()
            workers = a.dataloader_num_workers
            extra: dict[str, Any] = {}
            if workers > 0:
                extra = {
                    "persistent_workers": a.dataloader_persistent_workers,
                    "prefetch_factor": a.dataloader_prefetch_factor,
                    "multiprocessing_context": getattr(a, "dataloader_multiprocessing_context", None),
                }
            return DataLoader(
                mixture,
                batch_sampler=batches,
                collate_fn=MixtureCollator(self.data_collator),
                num_workers=workers,
                pin_memory=a.dataloader_pin_memory,
                **extra,
            )

        # -- state ------------------------------------------------------------------------------

        def save_coolmix_state(self, folder: str | os.PathLike[str]) -> Path:
            """Write `STATE_FILE` (sampler state after ``global_step`` steps, ledger) into ``folder``."""
            if self.coolmix_batch_sampler is None or self.coolmix_ledger is None:
                raise ConfigError(
                    "save_coolmix_state", None, "no training dataloader yet: call train() first"
                )
            step = int(self.state.global_step)
            data = {
                "format": STATE_FORMAT,
                "step": step,
                "sampler": self.coolmix_batch_sampler.state_dict(step=step),
                "ledger": self.coolmix_ledger.state_dict(),
            }
            path = Path(folder) / STATE_FILE
            _write_json(path, data)
            return path

        def _load_coolmix_state(
            self, folder: Path, batches: MicroBatchSampler, ledger: ExposureLedger
        ) -> None:
            trainer_state = folder / "trainer_state.json"
            step = json.loads(trainer_state.read_text())["global_step"] if trainer_state.is_file() else None
            path = folder / STATE_FILE
            if path.is_file():
                data = json.loads(path.read_text())
                if data.get("format") != STATE_FORMAT:
                    raise ConfigError(f"{path}.format", data.get("format"), f"expected {STATE_FORMAT}")
                if step is not None and data.get("step") != step:
                    raise ConfigError(
                        str(path), data.get("step"), f"sampler state is not at global_step={step}"
                    )
                batches.load_state_dict(data["sampler"])
                ledger.load_state_dict(data["ledger"])
                return
            if step is None:
                raise ConfigError(
                    str(folder), "no trainer_state.json", f"neither {STATE_FILE} nor a step to replay to"
                )
            warnings.warn(
                f"coolmix: {path} not found; replaying the sampler from its seed to step {step} "
                "(events recorded during the original run are lost; ledger tokens start at 0)",
                stacklevel=3,
            )
            sampler = batches.sampler
            for t in range(min(step, sampler.total_steps)):
                d, _ = sampler.global_batch(t)
                ledger.record(t, d, probs=list(sampler.probs_at(t).values()))
            batches.load_state_dict(sampler.state_dict())

        # -- loss -------------------------------------------------------------------------------

        def coolmix_weights_at(self, step: int) -> np.ndarray:
            """Per-domain loss weights for ``step``, aligned with the domain ids."""
            if self._coolmix_static_w is not None:
                return self._coolmix_static_w
            if self._coolmix_target is None:
                return self._coolmix_w
            sampler = self.coolmix_sampler if self.coolmix_sampler is not None else self._coolmix_probe
            p = np.fromiter(sampler.probs_at(step).values(), dtype=np.float64)
            key = tuple(p.tolist())
            if key != self._coolmix_w_key:  # recomputed only when p(t) changes
                self._coolmix_w_key = key
                self._coolmix_w = np.divide(self._coolmix_target, p, out=np.zeros_like(p), where=p > 0)
            return self._coolmix_w

        def get_batch_samples(
            self, epoch_iterator: Iterator[Any], num_batches: int, device: Any = None
        ) -> tuple[list[Any], float | None]:
            """One optimizer step's micro-batches, plus the global-batch normaliser N as the item count.

            Gathers (domain, n_tokens) of every micro-batch over the ranks once, records them in
            the ledger and fixes the step's weights for `compute_loss`.
            """
            batches: list[Any] = []
            for _ in range(num_batches):
                try:
                    batches.append(next(epoch_iterator))
                except StopIteration:
                    break
            if not batches:
                return batches, None
            if not isinstance(batches[0], Mapping) or DOMAIN_KEY not in batches[0]:
                raise ConfigError("batch", type(batches[0]).__name__, "training batches must carry 'domain'")
            step = int(self.state.global_step)
            dev = device if device is not None else self.args.device
            if any(b.get("labels") is None for b in batches):
                raise ConfigError(
                    "labels", None, "batches need labels (PadCollator makes them from input_ids)"
                )
            local = torch.stack(
                [
                    torch.cat([b[DOMAIN_KEY].long() for b in batches]),
                    torch.cat([_target_counts(b["labels"], self._coolmix_shift) for b in batches]),
                ],
                dim=1,
            )
            if self.args.world_size > 1:  # one collective per optimizer step; none in one process
                local = self.accelerator.gather(local.to(dev)).cpu()
            glob = local.numpy()
            d, n = glob[:, 0], glob[:, 1].astype(np.float64)
            w = self.coolmix_weights_at(step)
            wb = w[d]
            per_token = self.coolmix_unit == "token"
            if self.coolmix_reduction == "mean":
                norm = float(n.sum()) if per_token else float(len(d))
            else:
                norm = float((wb * n).sum()) if per_token else float(wb.sum())
            if self.coolmix_ledger is not None and self.coolmix_sampler is not None:
                probs = list(self.coolmix_sampler.probs_at(step).values())
                self.coolmix_ledger.record(step, d, n_tokens=n, probs=probs)
            self._coolmix_step_w = torch.tensor(w, dtype=torch.float32, device=dev)
            return batches, norm

        def compute_loss(
            self,
            model: Any,
            inputs: Mapping[str, Any],
            return_outputs: bool = False,
            num_items_in_batch: Any = None,
        ) -> Any:
            """Weighted loss: this micro-batch's share of the global-batch loss (module docstring).

            In eval mode (``model.training`` False) the unweighted token or sequence mean.
            """
            inputs = dict(inputs)
            domains = inputs.pop(DOMAIN_KEY, None)
            inputs.pop(DOMAIN_NAME_KEY, None)
            inputs.pop(INDEX_KEY, None)
            labels = inputs.pop("labels", None)
            if labels is None:
                raise ConfigError(
                    "labels", None, "batches need labels (PadCollator makes them from input_ids)"
                )
            core = self.accelerator.unwrap_model(model)
            if getattr(getattr(core, "config", None), "is_encoder_decoder", False) and (
                "decoder_input_ids" not in inputs
            ):
                if hasattr(core, "prepare_decoder_input_ids_from_labels"):
                    inputs["decoder_input_ids"] = core.prepare_decoder_input_ids_from_labels(labels=labels)
                else:
                    inputs["labels"] = labels
            outputs = model(**inputs)
            logits = outputs["logits"] if isinstance(outputs, Mapping) else outputs[0]
            training = bool(model.training)
            smoothing = float(self.args.label_smoothing_factor) if training else 0.0
            tok_sum, n = per_example_loss(logits, labels.to(logits.device), self._coolmix_shift, smoothing)
            mean_b = tok_sum / n.clamp_min(1.0)
            per_token = self.coolmix_unit == "token"
            if not training:
                loss = tok_sum.sum() / n.sum().clamp_min(1.0) if per_token else mean_b.mean()
                return (loss, outputs) if return_outputs else loss
            if domains is None:
                raise ConfigError(
                    "domain", None, "training batches must carry domain ids (use get_train_dataloader)"
                )
            domains = domains.to(logits.device)
            w = self._coolmix_step_w
            if w is None:  # compute_loss called outside get_batch_samples' step
                w = torch.tensor(self.coolmix_weights_at(int(self.state.global_step)), dtype=torch.float32)
            w = w.to(logits.device)
            numer = weighted_loss(mean_b, domains, w, "sum", n_tokens=n if per_token else None)
            if num_items_in_batch is not None:
                norm = float(num_items_in_batch)
                # DDP/FSDP average gradients over ranks: scale each rank's share back up
                scale = max(1, self.args.world_size) / norm if norm > 0 else 0.0
            else:  # no step-level normaliser: this micro-batch alone, averaged over accumulation
                wb = w[domains] if self.coolmix_reduction == "self_normalized" else torch.ones_like(n)
                local = float((wb * n).sum() if per_token else wb.sum())
                accum = getattr(
                    self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps
                )
                scale = 1.0 / (local * accum) if local > 0 else 0.0
            loss = numer * scale
            with torch.no_grad():  # per-domain (loss sum, count), kept on the device: no sync here
                if self._coolmix_loss_stats.device != logits.device:
                    self._coolmix_loss_stats = self._coolmix_loss_stats.to(logits.device)
                value = tok_sum if per_token else mean_b
                count = n if per_token else torch.ones_like(n)
                self._coolmix_loss_stats.index_add_(1, domains, torch.stack([value, count]).double())
            return (loss, outputs) if return_outputs else loss

        # -- logs -------------------------------------------------------------------------------

        def coolmix_metrics(self) -> dict[str, float]:
            """τ in force, the ledger per domain, weights, and per-domain train losses since the last call.

            Collective under DDP (reduces the loss sums over ranks): call it on every rank.
            """
            if self.coolmix_ledger is None or self.coolmix_sampler is None:
                return {}
            out: dict[str, float] = {}
            step = max(int(self.state.global_step) - 1, 0)
            tau = self.coolmix_sampler.tau_at(step)
            if tau is not None:
                out["coolmix/tau"] = float(tau)
            stats = self._coolmix_loss_stats.to(self.args.device, copy=True)
            if self.args.world_size > 1:
                stats = self.accelerator.reduce(stats, reduction="sum")
            stats = stats.cpu()
            self._coolmix_loss_stats.zero_()
            weighting = self._coolmix_static_w is not None or self._coolmix_target is not None
            w = self.coolmix_weights_at(step)
            for i, (name, row) in enumerate(self.coolmix_ledger.summary().items()):
                for key in ("share", "target_share", "epochs", "max_repeats", "examples", "tokens"):
                    out[f"coolmix/{name}/{key}"] = float(row[key])
                if stats[1, i] > 0:
                    out[f"coolmix/{name}/train_loss"] = float(stats[0, i] / stats[1, i])
                if weighting:
                    out[f"coolmix/{name}/weight"] = float(w[i])
            return out

        def log(self, logs: dict[str, float], *args: Any, **kwargs: Any) -> None:
            """``Trainer.log``; training records (those with ``loss``) also get `coolmix_metrics`."""
            if self.is_in_train and "loss" in logs and not any(k.startswith("eval_") for k in logs):
                logs.update(self.coolmix_metrics())
            super().log(logs, *args, **kwargs)

        def evaluate(
            self,
            eval_dataset: Any = None,
            ignore_keys: list[str] | None = None,
            metric_key_prefix: str = "eval",
        ) -> dict[str, float]:
            """``Trainer.evaluate``; a dict of eval sets adds ``<prefix>_macro_loss``, ``_worst_loss``."""
            which = eval_dataset if eval_dataset is not None else self.eval_dataset
            metrics = super().evaluate(
                eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix
            )
            if isinstance(which, dict) and which:
                losses = [metrics.get(f"{metric_key_prefix}_{name}_loss") for name in which]
                losses = [x for x in losses if x is not None]
                if losses:
                    extra = {
                        f"{metric_key_prefix}_macro_loss": float(np.mean(losses)),
                        f"{metric_key_prefix}_worst_loss": float(np.max(losses)),
                    }
                    metrics.update(extra)
                    self.log(dict(extra))
            return metrics

    for cls in (CoolmixCallback, MixtureTrainer):  # picklable by name: module __getattr__ finds them
        cls.__module__ = __name__
        cls.__qualname__ = cls.__name__
    classes = {"CoolmixCallback": CoolmixCallback, "MixtureTrainer": MixtureTrainer}
    globals().update(classes)
    return classes


def _pad_id(model: Any, processing_class: Any) -> int:
    """Pad id for the default collator: the tokenizer's, else the model config's, else 0.

    Padded positions are masked (attention 0, labels -100), so any id in the vocabulary will do.
    """
    config = getattr(model, "config", None)
    vocab = getattr(config, "vocab_size", None)
    for owner in (processing_class, config):
        v = getattr(owner, "pad_token_id", None) if owner is not None else None
        if isinstance(v, int) and not isinstance(v, bool) and v >= 0 and (vocab is None or v < vocab):
            return v
    return 0
