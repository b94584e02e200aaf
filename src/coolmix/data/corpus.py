"""`CorpusSpec` (what to load, validated once) and `Corpus` (per-language train/dev/test splits).

A spec is a frozen, JSON-able description: builder name, languages, training sizes (exact
counts, caps, or ratios with a maximum), held-out sizes, the training seed and builder options.
A corpus is the loaded result plus its manifest and a content fingerprint.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, Literal

from coolmix.errors import ConfigError

__all__ = ["CORPUS_NAMES", "SPLITS", "Corpus", "CorpusSpec", "Example", "Task"]

Task = Literal["lm", "mt"]
Example = str | tuple[str, str]
"""LM: a text; MT: a (source, target) pair."""

SPLITS: tuple[str, ...] = ("train", "dev", "test")
CORPUS_NAMES: tuple[str, ...] = ("bible", "gettext", "files", "jsonl", "hub")
"""The builders' names, known here without importing them (they import this module);
`coolmix.data.corpora.CORPORA` has exactly these keys (checked at its import)."""
_FIELDS = ("name", "langs", "train_sizes", "ratios", "max_train", "dev_size", "test_size", "seed", "options")


def _is_int(x: object) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


@dataclass(frozen=True)
class CorpusSpec:
    """What corpus to load. Validated on construction; every problem is a `ConfigError`.

    ``train_sizes`` gives per-language training counts. For ``bible`` they are exact (every
    language has the same ~31k verses); for corpora with natural sizes (``gettext``, ``files``,
    ``jsonl``, ``hub``) they are caps, and a language without them keeps everything. Or give
    ``ratios`` with ``max_train``: the largest ratio gets ``max_train`` and each other language
    ``max(1, round(max_train * r / r_max))``. An empty ``langs`` means the builder's defaults.

    >>> CorpusSpec("bible", ("en", "sw"), ratios={"en": 2733, "sw": 1}, max_train=20000).train_counts()
    {'en': 20000, 'sw': 7}
    """

    name: str
    langs: tuple[str, ...] = ()
    train_sizes: Mapping[str, int] | None = None
    ratios: Mapping[str, float] | None = None
    max_train: int | None = None
    dev_size: int | None = 500
    test_size: int | None = 500
    seed: int = 0
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.name not in CORPUS_NAMES:
            raise ConfigError("name", self.name, f"unknown corpus; expected one of {sorted(CORPUS_NAMES)}")
        langs = (self.langs,) if isinstance(self.langs, str) else self.langs
        if not isinstance(langs, Sequence) or not all(isinstance(x, str) and x for x in langs):
            raise ConfigError("langs", self.langs, "must be a list of language codes")
        if len(set(langs)) != len(langs):
            raise ConfigError("langs", self.langs, "duplicate language")
        object.__setattr__(self, "langs", tuple(langs))
        object.__setattr__(self, "train_sizes", self._counts("train_sizes", self.train_sizes))
        if self.max_train is not None and (not _is_int(self.max_train) or self.max_train < 1):
            raise ConfigError("max_train", self.max_train, "must be an integer >= 1")
        if self.ratios is not None:
            self._check_ratios()
        for name in ("dev_size", "test_size"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 0):
                raise ConfigError(name, v, "must be an integer >= 0 (or None: all of a given file)")
        if not _is_int(self.seed):
            raise ConfigError("seed", self.seed, "must be an integer")
        if not isinstance(self.options, Mapping):
            raise ConfigError("options", self.options, "must be a mapping")
        object.__setattr__(self, "options", json.loads(json.dumps(dict(self.options))))

    def _counts(self, field_name: str, sizes: Mapping[str, int] | None) -> dict[str, int] | None:
        if sizes is None:
            return None
        if not isinstance(sizes, Mapping):
            raise ConfigError(field_name, sizes, "must be a mapping of language -> count")
        for lang, n in sizes.items():
            if self.langs and lang not in self.langs:
                raise ConfigError(f"{field_name}.{lang}", n, f"language not in langs {list(self.langs)}")
            if not _is_int(n) or n < 1:
                raise ConfigError(f"{field_name}.{lang}", n, "must be an integer >= 1")
        return dict(sizes)

    def _check_ratios(self) -> None:
        if self.train_sizes is not None:
            raise ConfigError("ratios", self.ratios, "give either train_sizes or ratios, not both")
        if not isinstance(self.ratios, Mapping) or not self.ratios:
            raise ConfigError("ratios", self.ratios, "must be a non-empty mapping of language -> ratio")
        if self.langs and set(self.ratios) != set(self.langs):
            raise ConfigError(
                "ratios", dict(self.ratios), f"must give a ratio for each of {list(self.langs)}"
            )
        for lang, r in self.ratios.items():
            if isinstance(r, bool) or not isinstance(r, (int, float)) or not math.isfinite(r) or r <= 0:
                raise ConfigError(f"ratios.{lang}", r, "must be a finite number > 0")
        if self.max_train is None:
            raise ConfigError("max_train", None, "ratios need max_train, an integer >= 1")
        object.__setattr__(self, "ratios", {k: float(v) for k, v in self.ratios.items()})

    def train_counts(self) -> dict[str, int] | None:
        """Requested training counts per language (exact or caps), or None for natural sizes."""
        if self.ratios is not None:
            top = max(self.ratios.values())
            return {k: max(1, round(self.max_train * r / top)) for k, r in self.ratios.items()}
        if self.train_sizes is not None:
            return dict(self.train_sizes)
        if self.max_train is not None:
            return {lang: self.max_train for lang in self.langs}
        return None

    def with_langs(self, langs: Sequence[str]) -> CorpusSpec:
        """The same spec with ``langs`` filled in (builders resolve an empty ``langs`` to defaults)."""
        d = self.to_dict()
        d["langs"] = list(langs)
        return CorpusSpec.from_dict(d)

    def to_dict(self) -> dict[str, Any]:
        """A JSON/TOML-able dict; ``CorpusSpec.from_dict(spec.to_dict()) == spec``."""
        return {
            "name": self.name,
            "langs": list(self.langs),
            "train_sizes": None if self.train_sizes is None else dict(self.train_sizes),
            "ratios": None if self.ratios is None else dict(self.ratios),
            "max_train": self.max_train,
            "dev_size": self.dev_size,
            "test_size": self.test_size,
            "seed": self.seed,
            "options": json.loads(json.dumps(self.options)),
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> CorpusSpec:
        """Build from a config table; unknown keys raise `ConfigError` naming the key."""
        if not isinstance(d, Mapping):
            raise ConfigError("corpus", d, "must be a table")
        for key in d:
            if key not in _FIELDS:
                raise ConfigError(f"corpus.{key}", d[key], f"unknown key; expected one of {list(_FIELDS)}")
        if "name" not in d:
            raise ConfigError("corpus.name", None, f"required; one of {sorted(CORPUS_NAMES)}")
        kw = {k: v for k, v in d.items() if v is not None or k in ("dev_size", "test_size")}
        if "langs" in kw and isinstance(kw["langs"], list):
            kw["langs"] = tuple(kw["langs"])
        return cls(**kw)

    def key(self) -> str:
        """Canonical JSON of the spec (for hashing and cache keys)."""
        return json.dumps(self.to_dict(), sort_keys=True, ensure_ascii=False)

    def __hash__(self) -> int:
        return hash(self.key())


@dataclass(frozen=True, eq=False)
class Corpus:
    """Per-language train/dev/test examples of one task, with a manifest and a fingerprint.

    ``split(name)`` gives ``{lang: [text]}`` for LM and ``{lang: [(src, tgt)]}`` for MT, in
    ``langs`` order; ``ids(name)`` gives the aligned example ids (verse ids, source hashes, ...).
    """

    task: Task
    langs: tuple[str, ...]
    spec: CorpusSpec
    data: Mapping[str, Mapping[str, list[Example]]]
    example_ids: Mapping[str, Mapping[str, list[str]]]
    source: Mapping[str, Any]
    """Builder-specific provenance: package and version, file checksums, build time."""

    def split(self, name: str) -> dict[str, list[Example]]:
        return {lang: list(v) for lang, v in self._split(name, self.data).items()}

    def ids(self, name: str) -> dict[str, list[str]]:
        return {lang: list(v) for lang, v in self._split(name, self.example_ids).items()}

    def sizes(self, name: str) -> dict[str, int]:
        return {lang: len(v) for lang, v in self._split(name, self.data).items()}

    def _split(self, name: str, table: Mapping[str, Mapping[str, list[Any]]]) -> Mapping[str, list[Any]]:
        if name not in SPLITS:
            raise ConfigError("split", name, f"expected one of {list(SPLITS)}")
        return table[name]

    @cached_property
    def fingerprint(self) -> str:
        """16 hex digits of sha256 over task, languages and every example; equal content, equal print."""
        h = hashlib.sha256(f"{self.task}\x00{','.join(self.langs)}".encode())
        for split in SPLITS:
            for lang in self.langs:
                examples = self.data[split][lang]
                h.update(f"\x01{split}\x00{lang}\x00{len(examples)}\x00".encode())
                for ex in examples:
                    h.update((ex if isinstance(ex, str) else f"{ex[0]}\t{ex[1]}").encode() + b"\x00")
        return h.hexdigest()[:16]

    @cached_property
    def manifest(self) -> dict[str, Any]:
        """JSON-able record of what was loaded: spec, source provenance, sizes and fingerprint."""
        return {
            "corpus": self.spec.name,
            "task": self.task,
            "langs": list(self.langs),
            "spec": self.spec.to_dict(),
            "source": json.loads(json.dumps(self.source)),
            "sizes": {split: self.sizes(split) for split in SPLITS},
            "fingerprint": self.fingerprint,
        }
