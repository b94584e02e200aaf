"""`MixtureTrainer`: ``transformers.Trainer`` fed by a coolmix sampler, with loss weights and exact resume.

See `coolmix.integrations.hf` for the whole contract (what one sampler step is, the loss and its
normaliser, resume, logs). This module imports ``transformers`` at the top; `coolmix.integrations.hf`
imports it only when `MixtureTrainer` is first accessed.

Size: > 400 code lines: one class overriding six Trainer hooks that share sampler and weight state.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

try:
    import transformers
except ImportError:
    from coolmix.errors import ConfigError

    raise ConfigError(
        "transformers", "not installed", "pip install coolmix[hf] (transformers, accelerate, datasets)"
    ) from None
from transformers.trainer_utils import get_last_checkpoint

from coolmix.diagnostics.ledger import ExposureLedger
from coolmix.distributions import Distribution
from coolmix.errors import ConfigError
from coolmix.integrations.collate import (
    DOMAIN_KEY,
    DOMAIN_NAME_KEY,
    IGNORE_INDEX,
    INDEX_KEY,
    MixtureCollator,
    PadCollator,
)
from coolmix.integrations.hf_batches import (
    REDUCTIONS,
    UNITS,
    MicroBatchSampler,
    _as_distribution,
    _pad_id,
    target_counts,
    token_domains,
    token_losses,
)
from coolmix.integrations.hf_callbacks import CoolmixCallback, load_state, save_state
from coolmix.integrations.ranks import DataParallel
from coolmix.integrations.torch import MixtureDataset
from coolmix.packing import PAD_DOMAIN
from coolmix.sampler import MixtureSampler
from coolmix.schedules import Schedule
from coolmix.targets import check_target
from coolmix.weighting import StepWeights, step_weights, weighted_loss, weights_array

__all__ = ["MixtureTrainer"]

try:
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    CAUSAL_LM_CLASSES = frozenset(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
except ImportError:  # pragma: no cover - layout change
    CAUSAL_LM_CLASSES = frozenset()


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
    - ``log_domains``: add the per-domain ``coolmix/<d>/...`` keys to training logs (default
      True; with many domains, switch them off and keep ``coolmix/tau``).
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
        target: Distribution | float | Mapping[str, Any] | str | None = None,
        reduction: str = "mean",
        unit: str = "token",
        seed: int | None = None,
        composition: str = "exact",
        shift_labels: bool | None = None,
        data_collator: Callable[[list[Any]], Any] | None = None,
        log_domains: bool = True,
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
            raise ConfigError("loss_weights", "and target", "give static loss_weights or a target, not both")
        raw = MixtureDataset(train_datasets)  # validates names and lengths
        if data_collator is None:
            data_collator = PadCollator(_pad_id(model, kwargs.get("processing_class")))
        super().__init__(model=model, args=args, data_collator=data_collator, train_dataset=raw, **kwargs)
        a = self.args
        if a.max_steps is None or a.max_steps <= 0:
            raise ConfigError("args.max_steps", a.max_steps, "set max_steps: it is the sampler's total_steps")
        if a.n_gpu > 1:
            raise ConfigError("args.n_gpu", a.n_gpu, "nn.DataParallel is not supported; launch with torchrun")
        if a.auto_find_batch_size:
            raise ConfigError("args.auto_find_batch_size", True, "the global batch fixes the mixture stream")
        # the sampler state resumes the stream, so the Trainer must not skip batches too; the RNG
        # state it would then restore too early is restored in get_batch_samples (_load_rng_state)
        a.ignore_data_skip = True
        # transformers < 5 decides "loss already scaled for accumulation" from this flag
        self.model_accepts_loss_kwargs = True
        self.coolmix_reduction, self.coolmix_unit = reduction, unit
        self.coolmix_log_domains = bool(log_domains)
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
            # finite, >= 0, one per domain and no unknown names: weights_array checks it all
            self._coolmix_static_w = weights_array(loss_weights, names, "loss_weights")
        target_dist = None if target is None else _as_distribution(target, "target")
        if target_dist is not None:
            sizes = np.array([float(n) for n in raw.sizes.values()])
            self._coolmix_target = target_dist.array(names, sizes)
        self._coolmix_shift = self._detect_shift() if shift_labels is None else bool(shift_labels)
        # validates the schedule and sizes now, not at train(); gives p(t) before train() too
        self._coolmix_probe = self.make_sampler()
        if target_dist is not None:  # the trainer's and cm.loss_weights' check: refuse, or warn
            probe = self._coolmix_probe
            total, batch = a.max_steps, probe.batch_size
            check_target(probe.schedule, target_dist, raw.sizes, total, batch, "target", composition)
        self._coolmix_rng_checkpoint: str | None = None
        self.coolmix_sampler: MixtureSampler | None = None
        self.coolmix_batch_sampler: MicroBatchSampler | None = None
        self.coolmix_ledger: ExposureLedger | None = None
        self.coolmix_callback = CoolmixCallback(self)
        self.add_callback(self.coolmix_callback)
        self._coolmix_resume: str | None = None
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
        return type(model).__name__ in CAUSAL_LM_CLASSES

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
        for name, ds in zip(self._coolmix_raw.names, self._coolmix_raw.datasets, strict=True):
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
            dp=DataParallel(rank, world),
            dataset=mixture,
        )
        ledger = ExposureLedger(mixture.sizes)
        if self._coolmix_resume is not None:
            load_state(Path(self._coolmix_resume), batches, ledger)
        self.coolmix_sampler, self.coolmix_batch_sampler, self.coolmix_ledger = sampler, batches, ledger
        self._coolmix_step_w = None
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
            raise ConfigError("save_coolmix_state", None, "no training dataloader yet: call train() first")
        return save_state(folder, self.state.global_step, self.coolmix_batch_sampler, self.coolmix_ledger)

    def _load_rng_state(self, checkpoint: str | None) -> None:
        """Defer the Trainer's RNG restore to the first `get_batch_samples` of the resumed run.

        With ``ignore_data_skip`` the Trainer restores the RNG states (``rng_state.pth``) at the top
        of the epoch, *before* ``iter(dataloader)`` draws the DataLoader's base seed from torch's
        global generator, so every dropout mask after a resume would be shifted by one draw
        (max|Δθ| = 6.4e-5 after 3 resumed steps of the test GPT-2). The plain Trainer restores after
        that draw; so do we.
        """
        self._coolmix_rng_checkpoint = checkpoint

    def _restore_rng_now(self) -> None:
        checkpoint, self._coolmix_rng_checkpoint = self._coolmix_rng_checkpoint, None
        if checkpoint is not None:
            super()._load_rng_state(checkpoint)

    # -- loss -------------------------------------------------------------------------------

    def coolmix_weights_at(self, step: int) -> np.ndarray:
        """Per-domain loss weights for ``step``, aligned with the domain ids (`coolmix.step_weights`)."""
        return self._coolmix_step_weights(step).weights

    def _coolmix_step_weights(
        self, step: int, domains: np.ndarray | None = None, n_tokens: np.ndarray | None = None
    ) -> StepWeights:
        """The core helper's weights and global-batch normaliser N at ``step`` (module docstring)."""
        sampler = self.coolmix_sampler if self.coolmix_sampler is not None else self._coolmix_probe
        if self._coolmix_static_w is not None:  # fixed w: a "sample" of ones makes target / sample = w
            sample, target = np.ones_like(self._coolmix_static_w), self._coolmix_static_w
        else:
            sample, target = sampler.probs_array(step), self._coolmix_target
        return step_weights(
            sample,
            target,
            domains,
            reduction=self.coolmix_reduction,
            n_tokens=n_tokens,
            names=self.coolmix_names,
        )

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
        self._restore_rng_now()  # after iter(dataloader): see _load_rng_state
        step = int(self.state.global_step)
        dev = device if device is not None else self.args.device
        if any(b.get("labels") is None for b in batches):
            raise ConfigError("labels", None, "batches need labels (PadCollator makes them from input_ids)")
        shift, k = self._coolmix_shift, len(self.coolmix_names)
        per_token_ids = [b[DOMAIN_KEY].dim() == 2 for b in batches]
        if any(per_token_ids):
            if not all(per_token_ids) or self.coolmix_unit != "token":
                raise ConfigError("domain", "(B, T)", "per-token domain ids need unit='token' in every batch")
            # per-domain counts of target tokens: a (K,) vector, summed over the ranks
            counts = torch.zeros(k, dtype=torch.long)
            for b in batches:
                ids = token_domains(b[DOMAIN_KEY], b["labels"], shift).cpu()
                labels = (b["labels"][:, 1:] if shift else b["labels"]).cpu()
                keep = (labels != IGNORE_INDEX) & (ids != PAD_DOMAIN)
                counts += torch.bincount(ids[keep], minlength=k)[:k]
            if self.args.world_size > 1:
                counts = self.accelerator.reduce(counts.to(dev), reduction="sum").cpu()
            sw = self._coolmix_step_weights(step, np.arange(k), counts.numpy().astype(np.float64))
        else:
            local = torch.stack(
                [
                    torch.cat([b[DOMAIN_KEY].long() for b in batches]),
                    torch.cat([target_counts(b["labels"], shift) for b in batches]),
                ],
                dim=1,
            )
            if self.args.world_size > 1:  # one collective per optimizer step; none in one process
                local = self.accelerator.gather(local.to(dev)).cpu()
            glob = local.numpy()
            d, n = glob[:, 0], glob[:, 1].astype(np.float64)
            sw = self._coolmix_step_weights(step, d, n if self.coolmix_unit == "token" else None)
            if self.coolmix_ledger is not None and self.coolmix_sampler is not None:
                probs = self.coolmix_sampler.probs_array(step)
                self.coolmix_ledger.record(step, d, n_tokens=n, probs=probs)
        self._coolmix_step_w = torch.tensor(sw.weights, dtype=torch.float32, device=dev)
        return batches, sw.normaliser

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
            raise ConfigError("labels", None, "batches need labels (PadCollator makes them from input_ids)")
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
        shift = self._coolmix_shift
        tok, counted = token_losses(logits, labels, shift, smoothing)  # (B, T'), ignored targets 0
        tok_sum, n = tok.sum(-1), counted.sum(-1)
        mean_b = tok_sum / n.clamp_min(1.0)
        per_token = self.coolmix_unit == "token"
        if not training:
            loss = tok_sum.sum() / n.sum().clamp_min(1.0) if per_token else mean_b.mean()
            return (loss, outputs) if return_outputs else loss
        if domains is None:
            raise ConfigError(
                "domain", None, "training batches must carry domain ids (use get_train_dataloader)"
            )
        ids = token_domains(domains.to(logits.device), labels, shift)  # (B,) or per token (B, T')
        w = self._coolmix_step_w
        if w is None:  # compute_loss called outside get_batch_samples' step
            w = torch.tensor(self.coolmix_weights_at(int(self.state.global_step)), dtype=torch.float32)
        w = w.to(logits.device)
        if ids.dim() == 2 or per_token:  # Σ_bt c_bt w_bt ℓ_bt (padding ids −1 are not counted)
            numer = weighted_loss(tok, ids, w, "sum", mask=counted > 0, ignore_index=PAD_DOMAIN)
        else:  # Σ_b w_b ℓ̄_b
            numer = weighted_loss(mean_b, ids, w, "sum")
        if num_items_in_batch is not None:
            norm = float(num_items_in_batch)
            # DDP/FSDP average gradients over ranks: scale each rank's share back up
            scale = max(1, self.args.world_size) / norm if norm > 0 else 0.0
        else:  # no step-level normaliser: this micro-batch alone, averaged over accumulation
            local = self._local_normaliser(ids, counted, w)
            accum = getattr(
                self, "current_gradient_accumulation_steps", self.args.gradient_accumulation_steps
            )
            scale = 1.0 / (local * accum) if local > 0 else 0.0
        loss = numer * scale
        with torch.no_grad():  # per-domain (loss sum, count), kept on the device: no sync here
            if self._coolmix_loss_stats.device != logits.device:
                self._coolmix_loss_stats = self._coolmix_loss_stats.to(logits.device)
            if ids.dim() == 2:
                keep = (counted > 0) & (ids != PAD_DOMAIN)
                index, value, count = ids[keep], tok[keep], torch.ones_like(tok[keep])
            else:
                index, value = ids, (tok_sum if per_token else mean_b)
                count = n if per_token else torch.ones_like(n)
            self._coolmix_loss_stats.index_add_(1, index, torch.stack([value, count]).double())
        return (loss, outputs) if return_outputs else loss

    def _local_normaliser(self, ids: torch.Tensor, counted: torch.Tensor, w: torch.Tensor) -> float:
        """N of this micro-batch alone (used only when the Trainer passes no step normaliser)."""
        selfnorm = self.coolmix_reduction == "self_normalized"
        if ids.dim() == 2:
            keep = (counted > 0) & (ids != PAD_DOMAIN)
            return float(w[ids[keep]].sum() if selfnorm else keep.sum())
        size = counted.sum(-1) if self.coolmix_unit == "token" else torch.ones_like(counted[:, 0])
        return float(((w[ids] if selfnorm else 1.0) * size).sum())

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
        if not self.coolmix_log_domains:  # same flag on every rank: all skip the collective
            self._coolmix_loss_stats.zero_()
            return out
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
        metrics = super().evaluate(eval_dataset, ignore_keys=ignore_keys, metric_key_prefix=metric_key_prefix)
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
