"""Hugging Face ``transformers.Trainer`` integration: a coolmix-fed, loss-weighted, resumable Trainer.

This module is the public face; the code lives in plain modules: `coolmix.integrations.hf_trainer`
(`MixtureTrainer`), `coolmix.integrations.hf_callbacks` (`CoolmixCallback`, the state file),
`coolmix.integrations.hf_batches` (`MicroBatchSampler`, the losses) and
`coolmix.integrations.collate` (`PadCollator`, shared with the torch DataLoader path).
``transformers`` is imported only when `MixtureTrainer` or `CoolmixCallback` is first accessed, so
``import coolmix.integrations.hf`` costs torch only. Without it, accessing the classes raises a
`ConfigError` saying ``pip install coolmix[hf]``. A runnable example: ``examples/hf_trainer.py``.

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
causal LMs) and applies `coolmix.weighted_loss` with per-domain weights: static ``loss_weights``
(e.g. `coolmix.scalarization_weights`), or ``target``, giving w_i(t) = p_target,i / p_sample,i(t)
against the sampler's own p(t) at each step (scalarization and any hybrid: τ-sampling plus weights,
or Cooldown plus weights), or none (all 1). With ``unit="token"`` the optimizer step minimises Σ_b
w_b Σ_t ℓ_bt / N over the *global* batch, with N = Σ_b n_b (``reduction="mean"``) or Σ_b w_b n_b
(``"self_normalized"``), n_b the target tokens of example b; with ``unit="sequence"``, Σ_b w_b ℓ̄_b
/ N with N = B or Σ_b w_b (ℓ̄_b the example's token mean). Weights and N come from the core helper
`coolmix.step_weights`, computed once per optimizer step from every micro-batch of every rank (one
``gather``), so the sum of the micro-batch losses is exactly the full global-batch loss, whatever
the accumulation and padding (the naive per-micro-batch mean ÷ accumulation is not, for tokens or
self-normalised weights). Evaluation losses are unweighted (plain token or sequence means), so
per-domain eval losses compare across methods.

**Per-token domain ids.** A batch's ``domain`` may be (B,) (one per example, as `MixtureDataset`
tags them) or (B, T) (one per token, as a packer gives packed rows; −1 at padding). Per-token ids
need ``unit="token"``: the loss is Σ_bt w_{d_bt} ℓ_bt / N with N = Σ counted tokens, or
Σ w_{d_bt} over them (self-normalised); the ledger, which counts examples, is not updated.

**Resume.** Each Trainer checkpoint gets ``coolmix_sampler.json`` (`STATE_FILE`): the core sampler
state after ``global_step`` steps plus the `ExposureLedger`, written by `CoolmixCallback.on_save`.
``train(resume_from_checkpoint=...)`` loads it, so the data stream continues at that step with no
replay, and ``TrainingArguments.ignore_data_skip`` is forced to True so the Trainer does not also
skip batches. The RNG states the Trainer saves (``rng_state.pth``) are restored after the
DataLoader's iterator exists, as the plain Trainer does, so a resumed run is bit-exact under dropout
(max|Δθ| = 0; the Trainer's own restore point, before ``iter(dataloader)`` draws its seed from
torch's generator, shifted every dropout mask). (A checkpoint without the file, e.g. from a plain
Trainer, is replayed from the seed up to its step with a warning; events recorded during the run are
then lost.) The training DataLoader's ``len`` is the whole run's micro-batch count, so the Trainer
plans one epoch of ``max_steps`` updates; a resumed run yields the remaining ones and stops at
``max_steps``. ``state.epoch`` is ``global_step / max_steps`` in fresh and resumed runs alike
(exposure in epochs per domain is the ledger's).

**Logs.** Each training log record gets ``coolmix/tau`` (τ in force, when the schedule has one) and
per domain ``coolmix/<d>/{share,target_share,epochs,max_repeats,examples,tokens,train_loss}`` and
``coolmix/<d>/weight`` when weighting (``log_domains=False`` drops the per-domain keys); evaluating
a dict ``eval_dataset`` gives HF's ``eval_<d>_loss`` plus ``eval_macro_loss`` and
``eval_worst_loss``.

Scope: data parallelism through the Trainer's own launcher (torchrun DDP; tested with 2 CPU
processes on gloo; FSDP and DeepSpeed average gradients the same way but are untested here); not
``nn.DataParallel`` (``n_gpu > 1`` in one process), ``auto_find_batch_size``, or tensor/context
parallel splits of one batch. Tested with transformers 5.24.
"""

from __future__ import annotations

from typing import Any

from coolmix.integrations.collate import IGNORE_INDEX, PadCollator
from coolmix.integrations.hf_batches import STATE_FILE, MicroBatchSampler, per_example_loss

__all__ = [
    "IGNORE_INDEX",
    "STATE_FILE",
    "CoolmixCallback",  # noqa: F822 - imported on first access (module __getattr__)
    "MicroBatchSampler",
    "MixtureTrainer",  # noqa: F822
    "PadCollator",
    "per_example_loss",
]

_LAZY = {
    "MixtureTrainer": "coolmix.integrations.hf_trainer",
    "CoolmixCallback": "coolmix.integrations.hf_callbacks",
}


def __getattr__(name: str) -> Any:
    """Import the ``transformers``-dependent classes on first access (PEP 562)."""
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
