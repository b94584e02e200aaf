"""Checks at the start of a run or a resume: refuse a run that would be silently wrong, say when
a resumed one is no longer exact, and answer a finished run from its checkpoint.

Each check is a plain function the loop calls once, before the first step, so none of them
costs anything per step. Refusals are one-line `ConfigError`s naming the config field; notices
go to the ``coolmix`` logger.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from coolmix.distributions import Distribution
from coolmix.errors import ConfigError
from coolmix.schedules import Schedule
from coolmix.targets import check_target
from coolmix.train.config import TrainConfig
from coolmix.train.distributed import Env
from coolmix.train.metrics import METRICS_FILE, JsonlSink

__all__ = ["check_target_reachable", "check_vocab", "finished_record", "warn_if_not_exact"]

log = logging.getLogger(__name__)


def check_target_reachable(
    schedule: Schedule,
    target: Distribution | None,
    sizes: Mapping[str, int],
    total_steps: int,
    batch_size: int | None = None,
) -> None:
    """Refuse a loss target the sampler can never serve (a domain with p_target > 0 that the
    schedule gives p = 0 at every step would train at weight 0 without a word), and warn about
    up-weighted domains drawn less than once a batch: `coolmix.targets.check_target`, the check
    `coolmix.loss_weights` makes on the union of the schedule's supports, shared with the HF
    `MixtureTrainer`, so the trainer and the library refuse (and warn about) the same inputs.
    """
    if target is not None:
        check_target(schedule, target, sizes, total_steps, batch_size, field="balance.target")


def check_vocab(cfg: TrainConfig, tok: Any) -> int:
    """The model's vocabulary: the config's, which the tokenizer's ids must fit.

    BPE may stop short of ``tokenizer.vocab_size`` on a small corpus (the extra rows are never
    a target); a tokenizer with more ids than the config (a foreign file in the cache) is an
    error, so one config hash always builds one model shape.
    """
    want = cfg.tokenizer.vocab_size
    if tok.vocab_size > want:
        raise ConfigError(
            "tokenizer.vocab_size",
            want,
            f"the cached tokenizer has {tok.vocab_size} tokens; delete it from the cache to retrain",
        )
    return want


def warn_if_not_exact(state: Mapping[str, Any], env: Env) -> None:
    """One warning line when the resumed run executes differently from the one that wrote the
    checkpoint (thread count, world size, device): it continues, but not bit-exactly."""
    now = {"threads": torch.get_num_threads(), "world_size": env.world_size, "device": env.device.type}
    was = {k: state.get(k) for k in now}
    diff = [f"{k} {was[k]} -> {now[k]}" for k in now if was[k] is not None and was[k] != now[k]]
    if diff and env.is_main:
        log.warning(
            "resuming at step %d with %s: the run continues, but bit-exactness with an "
            "uninterrupted run is lost (float sums run in another order)",
            state["step"],
            ", ".join(diff),
        )


def finished_record(out: Path, state: Mapping[str, Any], env: Env) -> dict[str, Any]:
    """A finished run's final record, from its checkpoint; rank 0 also repairs the metrics file
    (missing, empty or zeroed: rewritten from the checkpoint's copy, with one warning line)."""
    if not env.is_main:
        text = (state.get("metrics") or {}).get("text") or ""
        lines = [ln for ln in text.split("\n") if ln.strip()]
        return json.loads(lines[-1]) if lines else {"step": state["step"], "final": True}
    jsonl = JsonlSink.resume(out / METRICS_FILE, state.get("metrics"), state["step"], log.warning)
    records = jsonl.records()
    jsonl.close()
    if not records:  # only a checkpoint older than this version, without the metrics' text
        log.warning("no metrics record survives for the finished run in %s; returning its step only", out)
        return {"step": state["step"], "final": True}
    return records[-1]
