"""Collators for domain-tagged examples: `MixtureCollator` (tags → tensors) and `PadCollator` (padding).

One padding implementation for every integration: the torch DataLoader path
(``MixtureCollator(PadCollator(pad_id))``) and the HF Trainer's default ``data_collator`` are the
same class.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any

import torch
from torch.utils.data._utils.collate import default_collate

from coolmix.errors import ConfigError
from coolmix.validate import check_int

__all__ = ["DOMAIN_KEY", "DOMAIN_NAME_KEY", "IGNORE_INDEX", "INDEX_KEY", "MixtureCollator", "PadCollator"]

DOMAIN_KEY, DOMAIN_NAME_KEY, INDEX_KEY = "domain", "domain_name", "index"
TAG_KEYS = frozenset((DOMAIN_KEY, DOMAIN_NAME_KEY, INDEX_KEY))
IGNORE_INDEX = -100
"""Label value skipped by the loss (PyTorch's ``cross_entropy`` default ``ignore_index``)."""


class MixtureCollator:
    """``collate_fn`` for tagged examples: ``domain`` and ``index`` become LongTensors (B,).

    Dict examples: the tags are taken out, the other fields go through ``collate_fn`` (default:
    torch's ``default_collate``; pass e.g. `PadCollator`), which must return a mapping; then
    ``domain``, ``index`` and ``domain_name`` (a list of str) are added to it. ``(example, domain)``
    pairs give ``(collate_fn(examples), domains)``.

    >>> MixtureCollator()([{"domain": 1, "domain_name": "sw", "index": 0, "x": 20}])["domain"]
    tensor([1])
    """

    def __init__(self, collate_fn: Callable[[list[Any]], Any] | None = None) -> None:
        if collate_fn is not None and not callable(collate_fn):
            raise ConfigError("collate_fn", type(collate_fn).__name__, "must be callable")
        self.collate_fn = collate_fn or default_collate

    def __call__(self, examples: list[Any]) -> Any:
        if examples and isinstance(examples[0], Mapping):
            rest = [{k: v for k, v in ex.items() if k not in TAG_KEYS} for ex in examples]
            out = self.collate_fn(rest)
            if not isinstance(out, Mapping):
                raise ConfigError(
                    "collate_fn",
                    type(out).__name__,
                    "must return a mapping for dict examples (domain, index, domain_name are added to it)",
                )
            if not isinstance(out, MutableMapping):
                out = dict(out)
            out[DOMAIN_KEY] = torch.tensor([ex[DOMAIN_KEY] for ex in examples], dtype=torch.long)
            out[INDEX_KEY] = torch.tensor([ex[INDEX_KEY] for ex in examples], dtype=torch.long)
            out[DOMAIN_NAME_KEY] = [ex[DOMAIN_NAME_KEY] for ex in examples]
            return out
        domains = torch.tensor([d for _, d in examples], dtype=torch.long)
        return self.collate_fn([ex for ex, _ in examples]), domains


class PadCollator:
    """Right-pads a list of dict examples into tensors (sequence fields to the longest, or a multiple).

    ``input_ids`` is padded with ``pad_token_id``, ``attention_mask`` (made from the lengths when
    absent) with 0, ``labels`` with -100; without ``labels``, they are ``input_ids`` with padding
    masked to -100 (causal-LM training; set ``make_labels=False`` to leave them out). Other
    sequence fields (per-token domain ids from a packer, position ids) are padded with
    ``pad_values.get(key, 0)``, scalars stacked, anything else (strings) kept as a list.

    >>> b = PadCollator(pad_token_id=0)([{"input_ids": [5, 6, 7]}, {"input_ids": [8]}])
    >>> b["input_ids"].tolist(), b["labels"].tolist(), b["attention_mask"].tolist()
    ([[5, 6, 7], [8, 0, 0]], [[5, 6, 7], [8, -100, -100]], [[1, 1, 1], [1, 0, 0]])
    """

    def __init__(
        self,
        pad_token_id: int = 0,
        make_labels: bool = True,
        pad_to_multiple_of: int | None = None,
        pad_values: Mapping[str, int | float] | None = None,
    ) -> None:
        self.pad_token_id = check_int("pad_token_id", pad_token_id, lo=0)
        self.make_labels = bool(make_labels)
        if pad_to_multiple_of is not None:
            pad_to_multiple_of = check_int("pad_to_multiple_of", pad_to_multiple_of, lo=1)
        self.pad_to_multiple_of = pad_to_multiple_of
        self.pad_values = {"input_ids": self.pad_token_id, "labels": IGNORE_INDEX, **(pad_values or {})}

    def __call__(self, examples: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        if not examples or not isinstance(examples[0], Mapping):
            raise ConfigError(
                "examples", type(examples).__name__, "PadCollator takes a non-empty list of dict examples"
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
            fill = self.pad_values.get(key, 0)
            padded = tensors[0].new_full((len(tensors), width, *tensors[0].shape[1:]), fill)
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
