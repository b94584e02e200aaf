"""A byte-level BPE tokenizer (HF ``tokenizers``) trained on a temperature-balanced sample.

Training text is drawn per language with p_l ∝ n_l^{1/τ} (Li et al. 2025, Eq. 1; τ=5 by
default) so low-resource languages get vocabulary, deterministically from a seed. NFKC
normalisation, byte-level pre-tokenisation (no unknown characters), special tokens ``<pad>``,
``<bos>``, ``<eos>``, ``<unk>`` and one ``<2xx>`` tag per language. Trained tokenizers are
cached under ``<cache>/tokenizers`` keyed by (corpus fingerprint, vocab size, τ, seed), each
with a ``.manifest.json`` holding its sha256, vocabulary size and languages: a cached file that
is altered, replaced (say by a smaller vocabulary) or has no manifest is retrained, with one
warning line, never used silently.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from coolmix.data.corpus import Corpus
from coolmix.data.manifest import (
    FORMAT_VERSION,
    build_lock,
    has_fields,
    read_json,
    resolve_cache_dir,
    sha256_file,
    write_checksummed,
)
from coolmix.data.splits import key_hash
from coolmix.distributions import temperature_probs
from coolmix.errors import ConfigError
from coolmix.fileio import remove_stale_temps

__all__ = ["SPECIALS", "Tokenizer", "balanced_sample", "lang_tag", "train_tokenizer"]

log = logging.getLogger(__name__)

SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
"""Control tokens; ids 0-3 in this order, language tags follow."""
SOURCE = "<src>"
"""Pseudo-language of MT source sentences in the tokenizer's training sample."""


def lang_tag(lang: str) -> str:
    """The tag token of a language: ``<2sw>``."""
    return f"<2{lang}>"


def _hf() -> Any:
    try:
        import tokenizers
    except ImportError:
        raise ConfigError(
            "tokenizer", "tokenizers", "needs the tokenizers package: pip install tokenizers"
        ) from None
    return tokenizers


class Tokenizer:
    """Wraps a trained ``tokenizers.Tokenizer``; ``encode`` adds no special tokens.

    Special-token strings inside text are encoded as plain text, so user text can never
    produce a control id; ``decode`` drops control and tag ids.
    """

    def __init__(self, hf: Any) -> None:
        self._tok = hf
        self._tok.encode_special_tokens = True
        ids = [hf.token_to_id(t) for t in SPECIALS]
        if any(i is None for i in ids):
            raise ConfigError("tokenizer", "special tokens", f"missing one of {SPECIALS}")
        self.pad_id, self.bos_id, self.eos_id, self.unk_id = ids

    @property
    def vocab_size(self) -> int:
        return int(self._tok.get_vocab_size(with_added_tokens=True))

    @property
    def langs(self) -> tuple[str, ...]:
        """Languages with a tag token, in id order."""
        added = sorted(self._tok.get_added_tokens_decoder().items())
        return tuple(
            t.content[2:-1] for _, t in added if t.content.startswith("<2") and t.content.endswith(">")
        )

    def lang_id(self, lang: str) -> int:
        i = self._tok.token_to_id(lang_tag(lang))
        if i is None:
            raise ConfigError("lang", lang, f"no language tag in this tokenizer; has {list(self.langs)}")
        return int(i)

    def encode(self, text: str) -> list[int]:
        return list(self._tok.encode(text, add_special_tokens=False).ids)

    def encode_batch(self, texts: Sequence[str]) -> list[list[int]]:
        return [list(e.ids) for e in self._tok.encode_batch(list(texts), add_special_tokens=False)]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` without special tokens; ``decode(encode(x)) == NFKC(x)``."""
        return str(self._tok.decode([int(i) for i in ids], skip_special_tokens=True))

    def save(self, path: str | os.PathLike[str]) -> str:
        """Write the tokenizer atomically; return the file's sha256."""
        return write_checksummed(Path(path), self._tok.to_str())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Tokenizer:
        """Load a saved tokenizer; ConfigError if missing or not a tokenizer file."""
        hf = _hf()
        try:
            return cls(hf.Tokenizer.from_file(str(path)))
        except ConfigError:
            raise
        except Exception as e:  # the Rust side raises bare Exception for bad JSON
            raise ConfigError("tokenizer", str(path), f"cannot load: {str(e).splitlines()[0]}") from None


def _counts(probs: Mapping[str, float], budget: int) -> dict[str, int]:
    """Largest-remainder rounding of budget * p, at least 1 each."""
    raw = {k: budget * p for k, p in probs.items()}
    out = {k: math.floor(v) for k, v in raw.items()}
    for k in sorted(raw, key=lambda k: out[k] - raw[k])[: budget - sum(out.values())]:
        out[k] += 1
    return {k: max(1, v) for k, v in out.items()}


def balanced_sample(domains: Mapping[str, Sequence[str]], tau: float, budget: int, seed: int) -> list[str]:
    """``budget`` texts drawn with p_l ∝ n_l^{1/τ}: whole passes over each language, then a
    seeded prefix, so repeats are as even as possible; deterministic in ``seed``.

    >>> s = balanced_sample({"en": ["a"] * 100, "sw": ["b"]}, tau=1.0, budget=101, seed=0)
    >>> s.count("a"), s.count("b")
    (100, 1)
    """
    sizes = {k: len(v) for k, v in domains.items() if len(v)}
    counts = _counts(temperature_probs(sizes, tau=tau), budget)
    out: list[str] = []
    for lang, want in counts.items():
        texts = domains[lang]
        order = sorted(range(len(texts)), key=lambda i: key_hash(f"coolmix/tok/{seed}/{lang}", i))
        full, rest = divmod(want, len(texts))
        out.extend(texts[i] for _ in range(full) for i in order)
        out.extend(texts[i] for i in order[:rest])
    return out


def _domains(corpus: Corpus) -> dict[str, list[str]]:
    train = corpus.split("train")
    if corpus.task == "lm":
        return {lang: list(v) for lang, v in train.items()}
    out = {lang: [tgt for _, tgt in v] for lang, v in train.items()}
    out[SOURCE] = list(dict.fromkeys(src for v in train.values() for src, _ in v))
    return out


def _build(corpus: Corpus, vocab_size: int, tau: float, seed: int, max_texts: int) -> Any:
    hf = _hf()
    domains = _domains(corpus)
    budget = min(max_texts, sum(len(v) for v in domains.values()))
    texts = balanced_sample(domains, tau, budget, seed)
    tok = hf.Tokenizer(hf.models.BPE(unk_token="<unk>"))
    tok.normalizer = hf.normalizers.NFKC()
    tok.pre_tokenizer = hf.pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = hf.decoders.ByteLevel()
    trainer = hf.trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        special_tokens=[*SPECIALS, *(lang_tag(lang) for lang in corpus.langs)],
        initial_alphabet=hf.pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator(texts, trainer=trainer, length=len(texts))
    return tok


def train_tokenizer(
    corpus: Corpus,
    vocab_size: int = 4000,
    tau: float = 5.0,
    seed: int = 0,
    cache_dir: str | os.PathLike[str] | None = None,
    max_texts: int = 200_000,
) -> Tokenizer:
    """Train (or load from the cache) a BPE tokenizer on ``corpus``'s training split.

    ``max_texts`` caps the balanced sample (examples, not characters). A corrupt cache file
    is retrained over.
    """
    n_fixed = 256 + len(SPECIALS) + len(corpus.langs)
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size <= n_fixed:
        raise ConfigError(
            "vocab_size", vocab_size, f"must be an integer > {n_fixed} (bytes + special tokens)"
        )
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not tau > 0:
        raise ConfigError("tau", tau, "must be > 0")
    if not isinstance(max_texts, int) or max_texts < 1:
        raise ConfigError("max_texts", max_texts, "must be an integer >= 1")
    root = resolve_cache_dir(cache_dir) / "tokenizers"
    path = root / f"bpe-{corpus.fingerprint}-v{vocab_size}-t{float(tau):g}-s{seed}-m{max_texts}.json"
    with build_lock(root, path.stem):
        remove_stale_temps(root)  # a killed writer's half file never becomes a cache entry
        tok = _cached(path, corpus)
        if tok is not None:
            return tok
        t0 = time.perf_counter()
        tok = Tokenizer(_build(corpus, vocab_size, float(tau), seed, max_texts))
        digest = tok.save(path)
        meta = {
            "format": FORMAT_VERSION,
            "file": path.name,
            "sha256": digest,
            "vocab_size": tok.vocab_size,
            "langs": list(tok.langs),
        }
        write_checksummed(_manifest_path(path), json.dumps(meta, indent=1, sort_keys=True))
        log.info(
            "trained BPE vocab %d (tau=%g) in %.2fs -> %s",
            tok.vocab_size,
            tau,
            time.perf_counter() - t0,
            path,
        )
        return tok


def _manifest_path(path: Path) -> Path:
    return path.with_name(path.stem + ".manifest.json")


_MANIFEST_FIELDS = {"file": str, "sha256": str, "vocab_size": int, "langs": list}


def _cached(path: Path, corpus: Corpus) -> Tokenizer | None:
    """The cached tokenizer at ``path`` if its manifest vouches for it (checksum, vocabulary
    size, languages); else None, with a warning when a file was there but failed a check."""
    if not path.is_file():
        return None
    meta = read_json(_manifest_path(path))
    if meta is None or not has_fields(meta, _MANIFEST_FIELDS) or meta["file"] != path.name:
        why = "has no valid manifest"
    elif sha256_file(path) != meta["sha256"]:
        why = "fails its sha256 checksum (altered or replaced)"
    else:
        try:
            tok = Tokenizer.load(path)
        except ConfigError:
            why = "cannot be loaded"
        else:
            if tok.vocab_size != meta["vocab_size"] or list(tok.langs) != meta["langs"]:
                why = "does not match its manifest (vocabulary or languages)"
            elif not set(tok.langs) >= set(corpus.langs):
                why = f"lacks language tags for {sorted(set(corpus.langs) - set(tok.langs))}"
            else:
                return tok
    log.warning("tokenizer cache %s %s; retraining", path, why)
    return None
