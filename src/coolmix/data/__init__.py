"""Real multilingual corpora (Bible, Debian gettext, user files, HF hub) and a BPE tokenizer.

>>> from coolmix.data import CorpusSpec, load_corpus
>>> spec = CorpusSpec("bible", ("en", "sw"), train_sizes={"en": 2000, "sw": 8})
>>> corpus = load_corpus(spec)  # doctest: +SKIP
>>> corpus.sizes("train")  # doctest: +SKIP
{'en': 2000, 'sw': 8}

Importing this package does not import torch, ``tokenizers`` or ``datasets``.
"""

from coolmix.data.corpora import CORPORA, Builder, load_corpus
from coolmix.data.corpus import SPLITS, Corpus, CorpusSpec
from coolmix.data.manifest import CACHE_ENV, default_cache_dir

__all__ = [
    "CACHE_ENV",
    "CORPORA",
    "SPLITS",
    "Builder",
    "Corpus",
    "CorpusSpec",
    "default_cache_dir",
    "load_corpus",
]
