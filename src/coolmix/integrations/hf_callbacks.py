"""Checkpoint side of the HF Trainer integration: `CoolmixCallback` and the sampler-state file.

Each Trainer checkpoint folder gets `STATE_FILE` (``coolmix_sampler.json``): the core sampler's
state after ``global_step`` steps and the `ExposureLedger`, written atomically by
`CoolmixCallback.on_save`; `load_state` reads it back when training resumes. The callback also
keeps ``state.epoch`` equal to ``global_step / max_steps`` (the Trainer plans one epoch of
``max_steps`` updates), which the Trainer alone gets wrong after a resume that skips no batches.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

try:
    import transformers
except ImportError:
    from coolmix.errors import ConfigError

    raise ConfigError(
        "transformers", "not installed", "pip install coolmix[hf] (transformers, accelerate, datasets)"
    ) from None
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from coolmix.diagnostics.ledger import ExposureLedger
from coolmix.errors import ConfigError
from coolmix.fileio import read_text, regular_or_missing, write_atomic_text
from coolmix.integrations.hf_batches import STATE_FILE, STATE_FORMAT, MicroBatchSampler
from coolmix.state_reader import StateReader

__all__ = ["CoolmixCallback", "load_state", "save_state"]


def save_state(folder: str | Path, step: int, batches: MicroBatchSampler, ledger: ExposureLedger) -> Path:
    """Write `STATE_FILE` into ``folder``: the sampler state after ``step`` steps and the ledger."""
    data = {
        "format": STATE_FORMAT,
        "step": int(step),
        "sampler": batches.state_dict(step=int(step)),
        "ledger": ledger.state_dict(),
    }
    path = Path(folder) / STATE_FILE
    write_atomic_text(path, json.dumps(data, indent=1, sort_keys=True))
    return path


def load_state(folder: Path, batches: MicroBatchSampler, ledger: ExposureLedger) -> None:
    """Restore ``batches`` and ``ledger`` from a checkpoint folder (replayed from the seed if no file).

    A checkpoint without `STATE_FILE` (e.g. from a plain Trainer) is replayed up to its
    ``global_step``, with a warning: events recorded during the original run are lost.
    """
    trainer_state = folder / "trainer_state.json"
    step = None
    if regular_or_missing(trainer_state, str(trainer_state)):
        step = StateReader(_json(trainer_state), str(trainer_state)).integer("global_step")
    path = folder / STATE_FILE
    if regular_or_missing(path, str(path)):
        r = StateReader(_json(path), str(path), STATE_FILE)
        if r.get("format") != STATE_FORMAT:
            raise r.fail("format", r.get("format"), f"expected {STATE_FORMAT}")
        if step is not None and r.get("step") != step:
            raise r.fail("step", r.get("step"), f"sampler state is not at global_step={step}")
        batches.load_state_dict(r.mapping("sampler").state)
        try:
            ledger.load_state_dict(r.mapping("ledger").state)
        except (KeyError, IndexError, TypeError, ValueError) as e:
            raise r.fail("ledger", type(e).__name__, f"corrupt ledger state ({e})") from None
        return
    if step is None:
        raise ConfigError(
            str(folder), "no trainer_state.json", f"neither {STATE_FILE} nor a step to replay to"
        )
    logging.getLogger("coolmix").warning(
        f"{path} not found; replaying the sampler from its seed to step {step} "
        "(events recorded during the original run are lost; ledger tokens start at 0)"
    )
    sampler = batches.sampler
    for t in range(min(step, sampler.total_steps)):
        d, _ = sampler.global_batch(t)
        ledger.record(t, d, probs=list(sampler.probs_at(t).values()))
    batches.load_state_dict(sampler.state_dict())


def _json(path: Path) -> Any:
    """A checkpoint's JSON file (regular, UTF-8); a corrupt one is one ConfigError naming it."""
    text = read_text(path, str(path))
    try:
        return json.loads(text)
    except ValueError as e:
        why = f"corrupt JSON ({e}); delete the checkpoint folder, or this file to replay the sampler"
        raise ConfigError(str(path), text[:40], why) from None


class CoolmixCallback(transformers.TrainerCallback):
    """Saves the sampler and ledger in every checkpoint, keeps the epoch right; added by `MixtureTrainer`.

    ``on_save`` writes `STATE_FILE` into ``<output_dir>/checkpoint-<global_step>`` (main process
    only, atomically). ``on_step_end`` sets ``state.epoch = global_step / max_steps``: one Trainer
    epoch is the whole run here, and a resumed run (which skips no batches: the sampler state
    resumes the stream) would otherwise count its epoch from the resume point. The log entries
    (`MixtureTrainer.coolmix_metrics`) are merged into the Trainer's own records by
    `MixtureTrainer.log`: a callback's ``on_log`` runs after ``log_history`` is written and after
    the reporting integrations, so keys it added would reach neither.
    """

    def __init__(self, trainer: Any = None) -> None:
        self.trainer = trainer

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.max_steps:
            state.epoch = state.global_step / state.max_steps  # the uninterrupted run's exact value

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if self.trainer is None or not args.should_save:
            return
        folder = Path(args.output_dir) / f"{PREFIX_CHECKPOINT_DIR}-{state.global_step}"
        if not folder.is_dir():
            logging.getLogger("coolmix").warning(
                f"checkpoint folder {folder} not found; sampler state not saved"
            )
            return
        self.trainer.save_coolmix_state(folder)
