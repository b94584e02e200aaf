"""Training-time tools beyond the paper, each called from the loop at one point:

- `AdaptiveSwitch` (after each eval): adaptive Cooldown. Watches held-out losses with the
  overfitting detector and, when the watched low-resource domains overfit (or pass an epoch
  budget), records the schedule's event in the sampler. The event is part of the sampler state,
  so it is in every checkpoint and a resumed run replays it exactly; the stream neither
  replays nor skips data because per-domain cursors carry over.
- `OverfitLog` (after each eval): the same detector over every domain, logged as events.
- `DoReMiProxy` (after each forward): DoReMi's Group-DRO proxy training. Per step, excess loss
  over a frozen reference model updates the domain weights α by exponentiated gradient; the
  proxy's loss is importance-weighted by α / p_sample and self-normalised over the batch.
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
from coolmix.sampler import MixtureSampler
from coolmix.train.distributed import Env, all_reduce_sum
from coolmix.train.evaluate import resource_buckets

__all__ = ["AdaptiveSwitch", "DoReMiProxy", "Extras", "Ledger", "OverfitLog", "VarianceMonitor"]


def low_resource(sizes: Mapping[str, float]) -> tuple[str, ...]:
    """The low-resource domains by `resource_buckets` (< 40% of the largest): the default watch list."""
    b = resource_buckets({k: int(v) for k, v in sizes.items()})
    return tuple(k for k in sizes if b[k] == "low")


class AdaptiveSwitch:
    """Record ``event`` in the sampler when the watched domains overfit or exceed an epoch budget."""

    def __init__(self, cfg: Any, sampler: MixtureSampler) -> None:
        sizes = dict(zip(sampler.names, sampler.sizes.tolist()))
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
        self.detector.update(done, record["dev"]["loss"], record.get("epochs"))
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


class DoReMiProxy:
    """Group-DRO proxy weights (DoReMi) from a frozen reference model's per-example losses."""

    def __init__(
        self,
        cfg: Any,
        sampler: MixtureSampler,
        model_cfg: Mapping[str, Any],
        task: str,
        vocab: int,
        loss_fn: Any,
        env: Env,
    ) -> None:
        from coolmix.models import build_model
        from coolmix.train import checkpoint
        from coolmix.train.config import config_hash, load_config

        ref_dir = Path(cfg.reference)
        ref_cfg = load_config(ref_dir / "config.toml")
        state = checkpoint.load_latest(ref_dir, config_hash(ref_cfg), map_location=env.device)
        if state is None:
            raise ConfigError(
                "doremi.reference", str(ref_dir), "no checkpoint there (train the reference first)"
            )
        self.reference = build_model(task, ref_cfg.model, vocab).to(env.device)
        self.reference.load_state_dict(state["model"])
        self.reference.eval().requires_grad_(False)
        self.sampler, self.loss_fn, self.env = sampler, loss_fn, env
        self.weights = DoReMiWeights(sampler.names, eta=cfg.eta, smoothing=cfg.smoothing)
        self.k = len(sampler.names)

    def step(self, step: int, batch: Any, proxy_loss: torch.Tensor) -> tuple[torch.Tensor, float]:
        """Update α with this batch's excess losses; return (per-domain weights, global normaliser)."""
        with torch.no_grad():
            ref_loss, _ = self.loss_fn(self.reference(*batch.inputs), batch.targets)
            sums = torch.zeros(3, self.k, dtype=torch.float64, device=proxy_loss.device)
            d = batch.domains
            sums[0].index_add_(0, d, proxy_loss.detach().double())
            sums[1].index_add_(0, d, ref_loss.double())
            sums[2].index_add_(0, d, torch.ones_like(ref_loss, dtype=torch.float64))
            all_reduce_sum(sums, self.env)
        present = (sums[2] > 0).cpu().numpy()
        means = (sums[:2] / sums[2].clamp(min=1)).cpu().numpy()
        names = self.sampler.names
        proxy = {n: float(means[0, i]) for i, n in enumerate(names) if present[i]}
        ref = {n: float(means[1, i]) for i, n in enumerate(names) if present[i]}
        alpha = np.array(list(self.weights.update(proxy, ref).values()))
        p_sample = self.sampler.probs_array(step)
        w = np.divide(alpha, p_sample, out=np.zeros_like(alpha), where=p_sample > 0)
        norm = float(w[self.sampler.global_batch(step)[0]].sum())
        return torch.tensor(w, dtype=torch.float32, device=proxy_loss.device), norm

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
            sizes = dict(zip(sampler.names, sampler.sizes.tolist()))
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
        self.ledger = ExposureLedger(dict(zip(sampler.names, sampler.sizes.astype(int).tolist())))

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
        from coolmix.schedule import Adaptive

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
            self.doremi = DoReMiProxy(
                cfg.doremi, sampler, cfg.model, data.task.kind, data.tok.vocab_size, loss_fn, env
            )
        self.variance = None
        if cfg.diagnostics.variance_examples > 0 and env.is_main:
            self.variance = VarianceMonitor(
                cfg.diagnostics.variance_examples, train_split, data.task, loss_fn, cfg.run.seed
            )

    def after_step(self, step: int) -> None:
        self.ledger.record(step)

    def loss_weights(self, step: int, batch: Any, loss_b: torch.Tensor) -> tuple[torch.Tensor, float] | None:
        return None if self.doremi is None else self.doremi.step(step, batch, loss_b)

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
