"""Deterministic held-out selection and training subsampling, keyed by content hashes.

Every ordering here is a sort by a salted BLAKE2b hash of an example's key (a verse id, an
English source string), so it is identical on every machine and Python/numpy version, and
prefix-stable: asking for more examples only adds to the ones chosen before.
"""

from __future__ import annotations

import hashlib
from collections.abc import Hashable, Mapping, Sequence
from typing import TypeVar

from coolmix.data.corpus import Corpus, CorpusSpec, Example, Task
from coolmix.errors import ConfigError

__all__ = ["HELDOUT_SALT", "assign_heldout", "carve", "hash_order", "key_hash", "make_corpus", "take_train"]

T = TypeVar("T")
K = TypeVar("K", bound=Hashable)

HELDOUT_SALT = "coolmix/heldout/v1"
"""Salt of the held-out ordering; independent of the training seed by construction."""


def key_hash(salt: str, key: object) -> int:
    """64-bit hash of ``str(key)`` under ``salt``; stable across processes (unlike ``hash``)."""
    digest = hashlib.blake2b(f"{salt}\x00{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def hash_order(keys: Sequence[K], salt: str) -> list[K]:
    """``keys`` sorted by their salted hash (ties, i.e. equal keys, keep input order)."""
    return sorted(keys, key=lambda k: key_hash(salt, k))


def assign_heldout(
    keys_by_lang: Mapping[str, Sequence[K]], dev_size: int, test_size: int, split_seed: int = 0
) -> dict[K, str]:
    """Choose held-out keys shared by all languages: key -> "dev" | "test"; the rest is training.

    Keys are walked in salted-hash order. Each key prefers dev or test by one hash bit, and is
    taken for that split while any language holding it still needs examples there, so each
    language gets at least its quota and a key is in one split for every language (an English
    source is never in one language's test set and another's training set). Dev then depends
    only on ``dev_size`` and test only on ``test_size``, unless a language is short of keys on
    one side; then a second walk lets it take any free key. A language that still runs out raises.
    """
    salt = f"{HELDOUT_SALT}/{split_seed}"
    langs_of: dict[K, list[str]] = {}
    for lang, keys in keys_by_lang.items():
        for k in dict.fromkeys(keys):
            langs_of.setdefault(k, []).append(lang)
    need = {s: {lang: n for lang in keys_by_lang} for s, n in (("dev", dev_size), ("test", test_size))}
    order = sorted(langs_of, key=lambda k: key_hash(salt, k))
    out: dict[K, str] = {}

    def take(k: K, split: str) -> bool:
        holders = langs_of[k]
        if not any(need[split][lang] > 0 for lang in holders):
            return False
        out[k] = split
        for lang in holders:
            need[split][lang] = max(0, need[split][lang] - 1)
        return True

    for k in order:  # each key goes to the side it prefers, if anyone holding it needs that side
        take(k, "dev" if key_hash(salt + "/side", k) & 1 else "test")
    if any(n for per in need.values() for n in per.values()):  # tight: let short languages take any key
        for k in order:
            if k not in out:
                take(k, "dev") or take(k, "test")
    for split, per_lang in need.items():
        short = {lang: n for lang, n in per_lang.items() if n > 0}
        if short:
            lang = next(iter(short))
            have = len(set(keys_by_lang[lang]))
            raise ConfigError(
                f"{split}_size",
                dev_size if split == "dev" else test_size,
                f"language {lang!r} has only {have} distinct examples; "
                f"not enough for dev_size={dev_size} + test_size={test_size} and training",
            )
    return out


def take_train(items: Sequence[T], keys: Sequence[object], n: int | None, seed: int, lang: str) -> list[T]:
    """The first ``n`` items (all if None) in an order keyed by (seed, lang): prefix-stable."""
    salt = f"coolmix/train/{seed}/{lang}"
    order = sorted(range(len(items)), key=lambda i: (key_hash(salt, keys[i]), i))
    if n is not None:
        order = order[:n]
    return [items[i] for i in order]


def carve(
    examples: Mapping[str, Sequence[tuple[K, T]]],
    dev_size: int,
    test_size: int,
    split_seed: int = 0,
    heldout_pool: Sequence[K] | None = None,
) -> tuple[dict[str, dict[str, list[tuple[K, T]]]], dict[str, int]]:
    """Split (key, example) lists per language into train/dev/test by `assign_heldout`.

    Returns ({split: {lang: [(key, example)]}}, {lang: dropped}): dev and test hold exactly
    ``dev_size``/``test_size`` examples per language (first in hash order); examples whose key
    is held out for another language's sake beyond the quota are dropped, never trained on.
    With ``heldout_pool`` (keys every language holds), held-out keys come from it alone, so
    all languages get the very same dev and test keys.
    """
    if heldout_pool is not None:
        keys = {lang: heldout_pool for lang in examples}
    else:
        keys = {lang: [k for k, _ in items] for lang, items in examples.items()}
    assignment = assign_heldout(keys, dev_size, test_size, split_seed)
    salt = f"{HELDOUT_SALT}/{split_seed}"
    out: dict[str, dict[str, list[tuple[K, T]]]] = {"train": {}, "dev": {}, "test": {}}
    dropped: dict[str, int] = {}
    for lang, items in examples.items():
        held: dict[str, list[tuple[K, T]]] = {"dev": [], "test": []}
        train: list[tuple[K, T]] = []
        for item in items:
            split = assignment.get(item[0])
            (held[split] if split else train).append(item)
        for split, quota in (("dev", dev_size), ("test", test_size)):
            ordered = sorted(held[split], key=lambda it: key_hash(salt, it[0]))
            out[split][lang] = ordered[:quota]
        if not train:
            raise ConfigError(
                "langs", lang, f"no training examples left after holding out dev={dev_size}, test={test_size}"
            )
        out["train"][lang] = train
        dropped[lang] = len(items) - len(train) - dev_size - test_size
    return out, dropped


def make_corpus(
    spec: CorpusSpec,
    task: Task,
    splits: Mapping[str, Mapping[str, Sequence[tuple[object, Example]]]],
    source: Mapping[str, object],
    exact: bool,
) -> Corpus:
    """Subsample training sets to the spec's counts (exact, or caps if not ``exact``) -> `Corpus`.

    ``splits`` is {split: {lang: [(key, example)]}} with held-out sets final; training items
    are taken in an order keyed by (spec.seed, lang), so the seed alone decides the subsample.
    """
    counts = spec.train_counts() or {}
    field = "ratios" if spec.ratios is not None else "train_sizes" if spec.train_sizes else "max_train"
    data: dict[str, dict[str, list[Example]]] = {s: {} for s in ("train", "dev", "test")}
    ids: dict[str, dict[str, list[str]]] = {s: {} for s in ("train", "dev", "test")}
    for lang in spec.langs:
        train = list(splits["train"][lang])
        n = counts.get(lang)
        if n is not None and exact and n > len(train):
            left = f"only {len(train)} training examples left after dev/test hold-out"
            if spec.ratios is not None:  # ratios are relative: max_train sets the scale, so name it
                why = f"gives {lang} {n:,} examples; {left} (lower max_train or ratios.{lang})"
                raise ConfigError("max_train", spec.max_train, why)
            raise ConfigError(f"{field}.{lang}", n, left)
        chosen = take_train(train, [k for k, _ in train], n, spec.seed, lang)
        for split, items in (("train", chosen), ("dev", splits["dev"][lang]), ("test", splits["test"][lang])):
            data[split][lang] = [ex for _, ex in items]
            ids[split][lang] = [str(k) for k, _ in items]
    return Corpus(task=task, langs=spec.langs, spec=spec, data=data, example_ids=ids, source=dict(source))
