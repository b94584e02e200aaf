"""Training-time tools beyond the paper, each called from the loop at one point:

- `AdaptiveSwitch` (after each eval): adaptive Cooldown. Watches held-out losses with the
  overfitting detector and, when the watched low-resource domains overfit (or pass an epoch
  budget), records the schedule's event in the sampler. It reads the ``dev`` split
  (`HELDOUT_SPLIT`): selection happens there, so end-of-training tables must score ``test``.
  The event is part of the sampler state, so it is in every checkpoint and a resumed run
  replays it exactly; the stream neither replays nor skips data because per-domain cursors
  carry over.
- `OverfitLog` (after each eval): the same detector over every domain, logged as events.
- `DoReMiProxy` (after each forward): DoReMi's Group-DRO proxy training. Per step, the
  per-token excess loss over a frozen reference model (clipped at 0 per token) updates the
  weights α of the domains in the batch by exponentiated gradient; the proxy's loss is
  importance-weighted by α / p_sample and self-normalised over the batch. The eval record
  carries the time-averaged α under ``doremi_weights``.
- `VarianceMonitor` (every N steps): per-domain gradient second moments s_i from a few
  per-example gradients, and Theorem 2's predicted single-sample variance gap at the current τ.
- `Ledger` (every step): the exposure ledger of the global batch (identical on every rank).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from coolmix.diagnostics.ledger import ExposureLedger
from coolmix.diagnostics.overfit import OverfitDetector
from coolmix.errors import ConfigError
from coolmix.methods.doremi import DoReMiWeights
from coolmix.mixture import resource_buckets
from coolmix.sampler import MixtureSampler
from coolmix.train.distributed import Env, all_reduce_sum
from coolmix.weighting import step_weights

__all__ = [
    "AdaptiveSwitch",
    "DoReMiProxy",
    "Extras",
    "Ledger",
    "OverfitLog",
    "VarianceMonitor",
    "domain_excess",
]


HELDOUT_SPLIT = "dev"
"""The split adaptive decisions read (disjoint from ``test``, which the reports score)."""


def low_resource(sizes: Mapping[str, float]) -> tuple[str, ...]:
    """The low-resource domains by `resource_buckets` (< 40% of the largest): the default watch list."""
    b = resource_buckets({k: int(v) for k, v in sizes.items()})
    return tuple(k for k in sizes if b[k] == "low")


class AdaptiveSwitch:
    """Record ``event`` in the sampler when the watched domains overfit or exceed an epoch budget."""

    def __init__(self, cfg: Any, sampler: MixtureSampler) -> None:
        sizes = dict(zip(sampler.names, sampler.sizes.tolist(), strict=True))
        watched = tuple(cfg.domains) or low_resource(sizes)
        unknown = [d for d in watched if d not in sizes]
        if unknown:
            raise ConfigError("adaptive.domains", unknown[0], f"unknown domain; known: {', '.join(sizes)}")
        self.cfg, self.sampler, self.watched = cfg, sampler, watched
        self.detector = OverfitDetector(
            margin=cfg.margin,
            patience=cfg.patience,
            min_evals=cfg.min_evals,
            smoothing=cfg.smoothing,
            domains=watched,
        )

    @property
    def switched(self) -> bool:
        return any(e.name == self.cfg.event for e in self.sampler.events)

    def after_eval(self, done: int, record: Mapping[str, Any]) -> dict[str, Any] | None:
        """Feed one eval record; returns the event (as a dict) if the switch fired now."""
        if self.switched:
            return None
        self.detector.update(done, record[HELDOUT_SPLIT]["loss"], record.get("epochs"))
        reason, domain = None, None
        if self.detector.is_flagged(self.watched, self.cfg.mode):
            flagged = [d for d in self.watched if d in self.detector.flagged]
            domain, reason = flagged[0], "overfit"
        elif self.cfg.max_epochs > 0:
            over = [d for d in self.watched if record["epochs"][d] >= self.cfg.max_epochs]
            if over:
                domain, reason = over[0], f"epochs >= {self.cfg.max_epochs:g}"
        if reason is None or done >= self.sampler.total_steps:
            return None
        info: dict[str, Any] = {"domain": domain, "reason": reason}
        if domain in self.detector.flagged:
            f = self.detector.flagged[domain]
            info.update(best_step=f.best_step, best_loss=f.best_loss, loss=f.loss)
        return self.sampler.record_event(self.cfg.event, step=done, **info).to_dict()

    def state_dict(self) -> dict[str, Any]:
        return self.detector.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.detector.load_state_dict(state)


class OverfitLog:
    """The overfitting detector over every domain, for the metrics (no effect on training)."""

    def __init__(self, names: tuple[str, ...], margin: float, patience: int) -> None:
        self.detector = OverfitDetector(margin=margin, patience=patience, min_evals=3, smoothing=0.3)
        self.names = names

    def after_eval(self, done: int, record: Mapping[str, Any]) -> dict[str, Any]:
        new = self.detector.update(done, record["dev"]["loss"], record.get("epochs"))
        return {
            "flagged": {
                d: {"step": f.step, "best_step": f.best_step, "epochs_at_best": f.epochs_at_best}
                for d, f in self.detector.flagged.items()
            },
            "new": [f.domain for f in new],
        }

    def state_dict(self) -> dict[str, Any]:
        return self.detector.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.detector.load_state_dict(state)


def domain_excess(
    proxy_logits: torch.Tensor,
    ref_logits: torch.Tensor,
    targets: torch.Tensor,
    domains: torch.Tensor,
    k: int,
    pad_id: int,
) -> torch.Tensor:
    """Per-domain sums of the per-token clipped excess loss and token counts, float64 [2, k].

    Row 0: Σ_t max(ℓ_proxy(t) − ℓ_ref(t), 0) over the non-pad target tokens of each domain's
    examples; row 1: the number of those tokens. Plain cross-entropy (no label smoothing): the
    excess measures how far the proxy is from the reference, not the training objective.
    """
    b, t, v = proxy_logits.shape
    flat_t = targets.reshape(b * t)

    def tok_loss(logits: torch.Tensor) -> torch.Tensor:
        ce = torch.nn.functional.cross_entropy(
            logits.detach().float().reshape(b * t, v), flat_t, ignore_index=pad_id, reduction="none"
        )
        return ce.view(b, t)

    mask = (targets != pad_id).double()
    excess = (tok_loss(proxy_logits) - tok_loss(ref_logits)).clamp(min=0.0).double() * mask
    out = torch.zeros(2, k, dtype=torch.float64, device=proxy_logits.device)
    out[0].index_add_(0, domains, excess.sum(dim=1))
    out[1].index_add_(0, domains, mask.sum(dim=1))
    return out


class DoReMiProxy:
    """Group-DRO proxy weights (DoReMi) against a frozen reference model, per-token excess.

    Each step: λ_i from `domain_excess` over the global batch (summed over ranks), α updated by
    `DoReMiWeights.update` with only the domains present in the batch, and the proxy's loss
    importance-weighted by α_i / q_i (q: the proxy's own sampling distribution, which should
    put every domain in every batch: uniform or the reference weights) and self-normalised
    over the global batch, as in the author's fork (loss = Σ ℓ·w / Σ w); both the weights and
    the normaliser come from `coolmix.step_weights` (``reduction="self_normalized"``).
    """

    def __init__(
        self,
        weights: DoReMiWeights,
        reference: torch.nn.Module,
        sampler: MixtureSampler,
        pad_id: int,
        env: Env,
    ) -> None:
        self.weights, self.reference, self.sampler = weights, reference, sampler
        self.pad_id, self.env = pad_id, env
        self.reference.eval().requires_grad_(False)
        self.k = len(sampler.names)

    @classmethod
    def from_config(
        cls, cfg: Any, sampler: MixtureSampler, task: str, vocab: int, pad_id: int, env: Env
    ) -> DoReMiProxy:
        """Load the reference model from ``cfg.doremi.reference`` (a finished run directory)."""
        from coolmix.models import build_model
        from coolmix.train import checkpoint
        from coolmix.train.config import config_hash, load_config

        ref_dir = Path(cfg.doremi.reference)
        ref_cfg = load_config(ref_dir / "config.toml")
        if ref_cfg.data != cfg.data or ref_cfg.tokenizer != cfg.tokenizer:
            raise ConfigError(
                "doremi.reference", str(ref_dir), "was trained on other data or another tokenizer"
            )
        state = checkpoint.load_latest(ref_dir, config_hash(ref_cfg), map_location=env.device)
        if state is None:
            raise ConfigError(
                "doremi.reference", str(ref_dir), "no checkpoint there (train the reference first)"
            )
        reference = build_model(task, ref_cfg.model, vocab).to(env.device)
        reference.load_state_dict(state["model"])
        weights = DoReMiWeights(sampler.names, eta=cfg.doremi.eta, smoothing=cfg.doremi.smoothing)
        return cls(weights, reference, sampler, pad_id, env)

    def step(self, step: int, batch: Any, logits: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Update α with this batch's excess losses; return (per-domain weights, global normaliser)."""
        with torch.no_grad():
            ref_logits = self.reference(*batch.inputs)
            sums = domain_excess(logits, ref_logits, batch.targets, batch.domains, self.k, self.pad_id)
            all_reduce_sum(sums, self.env)
        sums_np = sums.cpu().numpy()
        excess = {
            n: float(sums_np[0, i] / sums_np[1, i])
            for i, n in enumerate(self.sampler.names)
            if sums_np[1, i] > 0
        }
        alpha = np.array(list(self.weights.update(excess).values()))
        # w = α / q and N = Σ_b w_{d_b} over the global batch: the core helper's self_normalized rule
        sw = step_weights(
            self.sampler.probs_array(step),
            alpha,
            self.sampler.global_batch(step)[0],
            reduction="self_normalized",
        )
        return torch.tensor(sw.weights, dtype=torch.float32, device=logits.device), sw.normaliser

    def summary(self) -> dict[str, Any]:
        return {
            "current": self.weights.current(),
            "average": self.weights.average(),
            "updates": self.weights.updates,
        }

    def state_dict(self) -> dict[str, Any]:
        return self.weights.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.weights.load_state_dict(state)


class VarianceMonitor:
    """Per-domain gradient second moments on a few fixed training examples, every N steps."""

    def __init__(self, n_per_domain: int, train_split: Any, task: Any, loss_fn: Any, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.examples = {}
        for k, name in enumerate(train_split.names):
            n = train_split.size(k)
            self.examples[name] = [
                (k, int(i)) for i in rng.choice(n, size=min(n_per_domain, n), replace=False)
            ]
        self.split, self.task, self.loss_fn = train_split, task, loss_fn

    def measure(self, model: torch.nn.Module, sampler: MixtureSampler, step: int) -> dict[str, Any]:
        from coolmix.diagnostics.variance import estimator_moments, gradient_stats

        device = next(model.parameters()).device

        def one(m: torch.nn.Module, ex: tuple[int, int]) -> torch.Tensor:
            b = self.task.batch(self.split, np.array([ex[0]]), np.array([ex[1]]), device)
            loss, _ = self.loss_fn(m(*b.inputs), b.targets)
            return loss[0]

        was = model.training
        model.eval()  # no dropout noise in the gradient statistics
        stats = gradient_stats(model, one, self.examples)
        model.train(was)
        model.zero_grad(set_to_none=True)
        tau = sampler.tau_at(step)
        out: dict[str, Any] = {"s": stats.second_moments(), "mean_grad_norm": stats.mean_gradient_norms()}
        if tau is not None and math.isfinite(tau) and tau > 0:
            sizes = dict(zip(sampler.names, sampler.sizes.tolist(), strict=True))
            m = estimator_moments(stats, sizes, tau)
            out.update(
                tau=tau,
                F=m["F"],
                gap=m["gap"],
                gap_equal_s=m["gap_equal_s"],
                ts_variance=m["ts_variance"],
                s_variance=m["s_variance"],
                upsample_lower_variance=m["gap"] > 0,
            )
        return out


class Ledger:
    """The exposure ledger fed the global batch each step (every rank computes the same)."""

    def __init__(self, sampler: MixtureSampler, train_split: Any) -> None:
        self.sampler, self.split = sampler, train_split
        self.ledger = ExposureLedger(
            dict(zip(sampler.names, sampler.sizes.astype(int).tolist(), strict=True))
        )

    def record(self, step: int) -> None:
        domains, items = self.sampler.global_batch(step)
        rows = self.split.offsets[domains] + items
        tokens = self.split.tgt_len[rows]
        self.ledger.record(step, domains, tokens, self.sampler.probs_array(step))

    def summary(self) -> dict[str, Any]:
        return self.ledger.summary()

    def state_dict(self) -> dict[str, Any]:
        return self.ledger.state_dict()

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        self.ledger.load_state_dict(state)


class Extras:
    """The optional tools of one run, built from its config; the loop calls three hooks.

    ``after_step`` (every step), ``loss_weights`` (DoReMi only, after the forward) and
    ``after_eval`` (adds ``ledger``, ``overfit``, ``events`` and, when enabled, ``doremi`` and
    ``variance`` to the eval record, and may fire the adaptive switch).
    """

    def __init__(self, cfg: Any, sampler: MixtureSampler, data: Any, loss_fn: Any, env: Env) -> None:
        from coolmix.schedules import Adaptive

        train_split = data.splits["train"]
        self.env, self.sampler, self.cfg = env, sampler, cfg
        self.ledger = Ledger(sampler, train_split)
        self.overfit = OverfitLog(
            sampler.names, cfg.diagnostics.overfit_margin, cfg.diagnostics.overfit_patience
        )
        self.adaptive = (
            AdaptiveSwitch(cfg.adaptive, sampler) if isinstance(sampler.schedule, Adaptive) else None
        )
        self.doremi = None
        if cfg.doremi.reference:
            self.doremi = DoReMiProxy.from_config(
                cfg, sampler, data.task.kind, cfg.tokenizer.vocab_size, data.tok.pad_id, env
            )
        self.variance = None
        if cfg.diagnostics.variance_examples > 0 and env.is_main:
            self.variance = VarianceMonitor(
                cfg.diagnostics.variance_examples, train_split, data.task, loss_fn, cfg.run.seed
            )

    def after_step(self, step: int) -> None:
        self.ledger.record(step)

    def loss_weights(self, step: int, batch: Any, logits: torch.Tensor) -> tuple[torch.Tensor, float] | None:
        """DoReMi's proxy weights for this step from the proxy's logits (None: not a proxy run)."""
        return None if self.doremi is None else self.doremi.step(step, batch, logits)

    def after_eval(self, done: int, record: dict[str, Any], model: torch.nn.Module) -> None:
        record["ledger"] = self.ledger.summary()
        if record.get("dev", {}).get("loss") and all(v is not None for v in record["dev"]["loss"].values()):
            record["overfit"] = self.overfit.after_eval(done, record)
            if self.adaptive is not None:
                event = self.adaptive.after_eval(done, record)
                if event is not None:
                    record["switch"] = event
        record["events"] = [e.to_dict() for e in self.sampler.events]
        if self.doremi is not None:
            record["doremi"] = self.doremi.summary()
            record["doremi_weights"] = record["doremi"]["average"]  # what the main run trains on
        every = self.cfg.diagnostics.variance_every
        if self.variance is not None and (every == 0 or done % every == 0):
            record["variance"] = self.variance.measure(model, self.sampler, done)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"ledger": self.ledger.state_dict(), "overfit": self.overfit.state_dict()}
        if self.adaptive is not None:
            state["adaptive"] = self.adaptive.state_dict()
        if self.doremi is not None:
            state["doremi"] = self.doremi.state_dict()
        return state

    def load_state_dict(self, state: Mapping[str, Any] | None) -> None:
        if not state:
            return
        self.ledger.load_state_dict(state["ledger"])
        self.overfit.load_state_dict(state["overfit"])
        if self.adaptive is not None and "adaptive" in state:
            self.adaptive.load_state_dict(state["adaptive"])
        if self.doremi is not None and "doremi" in state:
            self.doremi.load_state_dict(state["doremi"])
