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
from coolmix.packing import IGNORE_INDEX
from coolmix.validate import check_int

__all__ = ["DOMAIN_KEY", "DOMAIN_NAME_KEY", "IGNORE_INDEX", "INDEX_KEY", "MixtureCollator", "PadCollator"]

DOMAIN_KEY, DOMAIN_NAME_KEY, INDEX_KEY = "domain", "domain_name", "index"
TAG_KEYS = frozenset((DOMAIN_KEY, DOMAIN_NAME_KEY, INDEX_KEY))


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
        if not isinstance(examples, (list, tuple)) or not examples:
            why = "must be a non-empty list of tagged examples"
            raise ConfigError("examples", type(examples).__name__, why)
        if isinstance(examples[0], Mapping):
            for ex in examples:
                missing = sorted(TAG_KEYS - ex.keys()) if isinstance(ex, Mapping) else sorted(TAG_KEYS)
                if missing:
                    why = "every example must be a mapping tagged by a coolmix dataset (domain, name, index)"
                    raise ConfigError("examples", missing, why)
            rest = [{k: v for k, v in ex.items() if k not in TAG_KEYS} for ex in examples]
            out = _collate(self.collate_fn, rest)
            if not isinstance(out, Mapping):
                raise ConfigError(
                    "collate_fn",
                    type(out).__name__,
                    "must return a mapping for dict examples (domain, index, domain_name are added to it)",
                )
            if not isinstance(out, MutableMapping):
                out = dict(out)
            out[DOMAIN_KEY] = _ids(DOMAIN_KEY, [ex[DOMAIN_KEY] for ex in examples])
            out[INDEX_KEY] = _ids(INDEX_KEY, [ex[INDEX_KEY] for ex in examples])
            out[DOMAIN_NAME_KEY] = [ex[DOMAIN_NAME_KEY] for ex in examples]
            return out
        if not all(isinstance(p, tuple) and len(p) == 2 for p in examples):
            why = "non-mapping examples must be (example, domain) pairs from a coolmix dataset"
            raise ConfigError("examples", type(examples[0]).__name__, why)
        domains = _ids(DOMAIN_KEY, [d for _, d in examples])
        return _collate(self.collate_fn, [ex for ex, _ in examples]), domains


def _ids(field: str, values: list[Any]) -> torch.Tensor:
    """Tags as a LongTensor; anything but integers is one ConfigError naming the tag."""
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in values):
        bad = next(v for v in values if not isinstance(v, int) or isinstance(v, bool))
        raise ConfigError(f"examples.{field}", bad, "tags must be integers (from a coolmix dataset)")
    try:
        return torch.tensor(values, dtype=torch.long)
    except (OverflowError, RuntimeError) as e:
        raise ConfigError(f"examples.{field}", max(values), f"not an int64 ({e})") from None


def _collate(collate_fn: Callable[[list[Any]], Any], examples: list[Any]) -> Any:
    """``collate_fn(examples)``; the errors malformed examples raise in it become one ConfigError."""
    try:
        return collate_fn(examples)
    except ConfigError:
        raise
    except (KeyError, IndexError, RuntimeError, TypeError, ValueError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        why = f"collate_fn could not batch them ({type(e).__name__}: {first[:160]}): same keys and shapes?"
        raise ConfigError("examples", len(examples), why) from None


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
        if not examples or not all(isinstance(ex, Mapping) for ex in examples):
            raise ConfigError(
                "examples", type(examples).__name__, "PadCollator takes a non-empty list of dict examples"
            )
        keys = set(examples[0])
        for ex in examples:
            if set(ex) != keys:
                odd = sorted(map(str, set(ex) ^ keys))
                raise ConfigError("examples", odd, "every example must have the same keys")
        out: dict[str, Any] = {}
        lengths: list[int] | None = None
        for key in examples[0]:
            try:
                out[key], lens = self._field(key, [ex[key] for ex in examples])
            except (IndexError, RuntimeError, TypeError, ValueError) as e:
                first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
                why = f"cannot batch this field ({first[:160]}): numbers or 1-D sequences of them"
                raise ConfigError(f"examples.{key}", type(e).__name__, why) from None
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

    def _field(self, key: str, values: list[Any]) -> tuple[Any, list[int] | None]:
        """One field of the batch: strings as a list, scalars stacked, sequences right-padded
        (with their lengths)."""
        first = values[0]
        texts = isinstance(first, (list, tuple)) and first and isinstance(first[0], str)
        if isinstance(first, str) or texts:
            return values, None
        tensors = [torch.as_tensor(v) for v in values]
        if tensors[0].dim() == 0:
            return torch.stack(tensors), None
        lens = [t.shape[0] for t in tensors]
        width = max(lens)
        if self.pad_to_multiple_of:
            width = -(-width // self.pad_to_multiple_of) * self.pad_to_multiple_of
        fill = self.pad_values.get(key, 0)
        padded = tensors[0].new_full((len(tensors), width, *tensors[0].shape[1:]), fill)
        for row, t in enumerate(tensors):
            padded[row, : t.shape[0]] = t
        return padded, lens
