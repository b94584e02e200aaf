"""The paper's own corpora from the Hugging Face hub: OPUS-100 (MT) and mC4 (LM), via ``datasets``.

``datasets`` is imported lazily (``pip install datasets``). Option ``data_files`` points the same
code at local files in the hub layout (OPUS-100 rows ``{"translation": {"en": .., xx: ..}}``,
mC4 rows ``{"text": ..}``), which is how it is tested offline. Downloads are cached under the
corpus cache (``<cache>/hub``). OPUS-100's own validation/test sets give dev/test; mC4's
validation split gives both (dev first, then test), and its training stream is shuffled with a
buffer and cut at the requested size, so mC4 needs ``train_sizes`` or ``ratios``.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from coolmix.data.corpus import Corpus, CorpusSpec, Example
from coolmix.data.manifest import sha256_file
from coolmix.data.splits import make_corpus
from coolmix.errors import ConfigError

__all__ = ["DATASETS", "OPTIONS", "load"]

DATASETS: dict[str, dict[str, Any]] = {
    "opus100": {"path": "Helsinki-NLP/opus-100", "task": "mt", "splits": ("train", "validation", "test")},
    "mc4": {"path": "allenai/c4", "task": "lm", "splits": ("train", "validation")},
}
OPTIONS: dict[str, Any] = {
    "dataset": None,
    "path": None,
    "revision": None,
    "data_files": None,
    "streaming": None,
    "shuffle_buffer": 10_000,
}
"""``dataset``: opus100 | mc4; ``path``/``revision``: hub repo override; ``data_files``:
{lang: {split: path}} local files in the hub layout; ``streaming``: default True for mc4."""


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise ConfigError("corpus", "hub", "needs the datasets package: pip install datasets") from None
    return datasets


def config_name(dataset: str, lang: str) -> str:
    """Hub config of a language: OPUS-100 pairs are sorted (``am-en``, ``en-es``); mC4 uses the code."""
    return "-".join(sorted(("en", lang))) if dataset == "opus100" else lang


def _open(spec: CorpusSpec, lang: str, root: Path, streaming: bool) -> tuple[Any, dict[str, Any]]:
    """A DatasetDict (or IterableDatasetDict) for one language, and its provenance."""
    datasets = _datasets()
    name = spec.options["dataset"]
    files = spec.options.get("data_files")
    cache = str(root / "hub")
    if files is not None:
        if not isinstance(files, Mapping) or not isinstance(files.get(lang), Mapping):
            raise ConfigError(f"options.data_files.{lang}", None, "must map split -> local file path")
        local = {s: str(p) for s, p in files[lang].items()}
        for s, p in local.items():
            if not Path(p).is_file():
                raise ConfigError(f"options.data_files.{lang}.{s}", p, "file not found")
        ds = datasets.load_dataset("json", data_files=local, streaming=streaming, cache_dir=cache)
        return ds, {"data_files": {s: sha256_file(Path(p)) for s, p in local.items()}}
    path = spec.options.get("path") or DATASETS[name]["path"]
    config, revision = config_name(name, lang), spec.options.get("revision")
    try:
        ds = datasets.load_dataset(path, config, revision=revision, streaming=streaming, cache_dir=cache)
    except Exception as e:  # hub/network errors have many types; the user needs one line
        raise ConfigError(
            "langs", lang, f"cannot load {path} config {config!r}: {str(e).splitlines()[0]}"
        ) from None
    return ds, {"path": path, "config": config, "revision": revision}


def _rows(ds: Any, split: str, lang: str) -> Any:
    if split not in ds:
        raise ConfigError(f"options.data_files.{lang}", split, f"split missing; have {list(ds)}")
    return ds[split]


def _example(row: Mapping[str, Any], task: str, lang: str) -> tuple[str, Example] | None:
    if task == "lm":
        text = (row.get("text") or "").strip()
        return (text, text) if text else None
    pair = row.get("translation") or {}
    src, tgt = (pair.get("en") or "").strip(), (pair.get(lang) or "").strip()
    return (src, (src, tgt)) if src and tgt else None


def _take(rows: Iterable[Mapping[str, Any]], task: str, lang: str, skip: int, n: int | None) -> list[Any]:
    out: list[tuple[str, Example]] = []
    for row in rows:
        ex = _example(row, task, lang)
        if ex is None:
            continue
        if skip:
            skip -= 1
            continue
        if n is not None and len(out) >= n:
            break
        out.append(ex)
    return out


def _load_lang(
    spec: CorpusSpec, ds: Any, name: str, lang: str, n: int | None, streaming: bool
) -> dict[str, list[Any]]:
    """train/dev/test (key, example) lists of one language."""
    task = DATASETS[name]["task"]
    seed = (spec.seed * 1_000_003 + zlib.crc32(lang.encode())) % 2**32
    train = _rows(ds, "train", lang)
    if n is not None:  # shuffle before cutting so the cut is a random sample, keyed by (seed, lang)
        buffer = spec.options.get("shuffle_buffer", OPTIONS["shuffle_buffer"])
        train = train.shuffle(seed=seed, buffer_size=buffer) if streaming else train.shuffle(seed=seed)
    out = {"train": _take(train, task, lang, 0, n)}
    if name == "opus100":
        out["dev"] = _take(_rows(ds, "validation", lang), task, lang, 0, spec.dev_size)
        out["test"] = _take(_rows(ds, "test", lang), task, lang, 0, spec.test_size)
    else:
        if spec.dev_size is None or spec.test_size is None:
            raise ConfigError(
                "dev_size", spec.dev_size, "mc4 carves dev and test from validation: give numbers"
            )
        val = _rows(ds, "validation", lang)
        out["dev"] = _take(val, task, lang, 0, spec.dev_size)
        out["test"] = _take(val, task, lang, spec.dev_size, spec.test_size)
    return out


def load(spec: CorpusSpec, root: Path) -> Corpus:
    """Load OPUS-100 or mC4 for ``spec.langs`` (hub, or local files in the hub layout)."""
    name = spec.options.get("dataset")
    if name not in DATASETS:
        raise ConfigError("options.dataset", name, f"expected one of {sorted(DATASETS)}")
    if not spec.langs:
        raise ConfigError("langs", (), "hub corpora need explicit languages")
    task = DATASETS[name]["task"]
    streaming = spec.options.get("streaming")
    streaming = name == "mc4" if streaming is None else bool(streaming)
    counts = spec.train_counts() or {}
    if name == "mc4" and set(counts) != set(spec.langs):
        raise ConfigError(
            "train_sizes", spec.train_sizes, "mc4 is too large to load whole: give sizes for every language"
        )
    splits: dict[str, dict[str, list[Any]]] = {"train": {}, "dev": {}, "test": {}}
    provenance: dict[str, Any] = {}
    for lang in spec.langs:
        try:
            ds, provenance[lang] = _open(spec, lang, root, streaming)
            parts = _load_lang(spec, ds, name, lang, counts.get(lang), streaming)
        except ConfigError:
            raise
        except Exception as e:  # datasets raises many types for bad files and hub trouble
            raise ConfigError("langs", lang, f"cannot read {name} data: {str(e).splitlines()[0]}") from None
        for split, examples in parts.items():
            size = {"train": 1, "dev": spec.dev_size, "test": spec.test_size}[split]
            if not examples and size != 0:
                raise ConfigError("langs", lang, f"no {split} examples")
            splits[split][lang] = examples
    source = {
        "dataset": name,
        "streaming": streaming,
        "datasets": _datasets().__version__,
        "sources": provenance,
    }
    return make_corpus(spec, task, splits, source, exact=False)
