"""Small Transformers for the paper's two tasks: a GPT for multilingual LM, an encoder-decoder for MT.

`build_model(task, cfg_dict, vocab_size)` turns the trainer's ``[model]`` table into a module;
`per_example_loss` gives the per-example losses that `coolmix.weighted_loss` reweights.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import Any

from torch import nn

from coolmix.errors import ConfigError
from coolmix.models.gpt import GPT, GPTConfig
from coolmix.models.losses import per_example_loss
from coolmix.models.seq2seq import Seq2Seq, Seq2SeqConfig

__all__ = ["GPT", "MODELS", "GPTConfig", "Seq2Seq", "Seq2SeqConfig", "build_model", "per_example_loss"]

MODELS: dict[str, tuple[type, type[nn.Module]]] = {
    "lm": (GPTConfig, GPT),
    "mt": (Seq2SeqConfig, Seq2Seq),
}
"""Task name -> (config dataclass, model class)."""


def build_model(task: str, cfg_dict: Mapping[str, Any], vocab_size: int) -> nn.Module:
    """A freshly initialised model for `task` ("lm" | "mt") from a ``[model]`` mapping.

    `vocab_size` comes from the tokenizer; `cfg_dict` may repeat it only with the same value.
    Unknown keys and bad values raise `ConfigError` with the dotted field (``model.d_model``).
    Initialisation draws from torch's global RNG, so seed it first for a reproducible model.

    >>> build_model("lm", {"d_model": 64, "n_layer": 2}, vocab_size=100).cfg.n_head
    4
    """
    if task not in MODELS:
        raise ConfigError("task", task, f"must be one of {sorted(MODELS)}")
    cfg_cls, model_cls = MODELS[task]
    known = {f.name for f in fields(cfg_cls)}
    for key, value in cfg_dict.items():
        if key not in known:
            raise ConfigError(f"model.{key}", value, f"unknown key for task {task!r}; known: {sorted(known)}")
    kwargs = dict(cfg_dict)
    if kwargs.setdefault("vocab_size", vocab_size) != vocab_size:
        raise ConfigError(
            "model.vocab_size", kwargs["vocab_size"], f"differs from the tokenizer's {vocab_size}"
        )
    try:
        cfg = cfg_cls(**kwargs)
    except ConfigError as e:
        raise ConfigError(f"model.{e.field}", e.value, e.why) from None
    return model_cls(cfg)
