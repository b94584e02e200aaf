"""Score a finished run's whole test split from its final checkpoint (no training).

Runs trained before per-item test scores existed (`coolmix.train.item_scores`) still hold their
final model; this rebuilds the model from the run's own ``config.toml`` and the checkpoint at
``run.total_steps`` (checksummed, same config hash), and returns the ``test_items`` record the
trainer now writes at the end of every run. The model and data are the run's, so the result is
what the run would have recorded.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from coolmix.errors import ConfigError

__all__ = ["rescore_run"]


def rescore_run(run_dir: Path, cache: Any = None) -> dict[str, Any]:
    """The ``test_items`` record of the finished run in ``run_dir`` (`ConfigError` if it has no
    readable config or no final checkpoint)."""
    from coolmix.fileio import regular_or_missing
    from coolmix.models import build_model, per_example_loss
    from coolmix.train import checkpoint, distributed, preflight, tasks
    from coolmix.train.config import config_hash, load_config
    from coolmix.train.item_scores import test_items
    from coolmix.train.loop import CONFIG_FILE

    path = run_dir / CONFIG_FILE
    if not regular_or_missing(path, CONFIG_FILE):
        raise ConfigError("run", str(run_dir), f"has no {CONFIG_FILE}: not a coolmix run folder")
    cfg = load_config(path)
    if not cfg.run.test:
        raise ConfigError("run.test", False, f"{run_dir.name} was trained without a test split")
    state = checkpoint.load_latest(run_dir, config_hash(cfg))
    if state is None or state["step"] != cfg.run.total_steps:
        got = "none" if state is None else f"the newest is step {state['step']}"
        why = f"needs the final checkpoint (step {cfg.run.total_steps}; {got}): pruned, or unfinished?"
        raise ConfigError("checkpoint", str(run_dir), why)
    env = distributed.setup("cpu")
    threads = torch.get_num_threads()
    if cfg.run.threads:
        torch.set_num_threads(cfg.run.threads)

    def amp() -> torch.autocast:  # the run's own precision
        return torch.autocast(env.device.type, dtype=torch.bfloat16, enabled=cfg.run.bf16)

    try:
        data = tasks.prepare(cfg, cache, ("test",))
        model = build_model(data.task.kind, cfg.model, preflight.check_vocab(cfg, data.tok))
        model.load_state_dict(state["model"])
        pad = data.tok.pad_id
        mt = isinstance(data.task, tasks.MTTask) and cfg.run.max_decode > 0
        loss_fn = lambda lg, t: per_example_loss(lg, t, pad_id=pad)  # noqa: E731
        return test_items(model, data, loss_fn, cfg.run.batch_size, env, amp, mt)
    finally:
        torch.set_num_threads(threads)
        distributed.teardown(env)
